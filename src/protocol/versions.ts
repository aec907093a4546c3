/**
 * Victron firmware versions: the raw `/FirmwareVersion` encodings per product family,
 * their display strings, and ordering.
 *
 * - GX (Venus OS): strings `v3.70`, betas `v3.70~33` (a beta sorts before its release).
 * - VE.Direct / VE.Can: integers read as hex with a dot, 0x157 → `v1.57`; 3 bytes 0xAABBCC where CC is
 *   0xFF or 0x00 for a release, else beta CC: 0x0157_03 → `v1.57~03`. 0xFFFFFF means unknown.
 * - VE.Bus: 0x504 → `v504`.
 */
import type { VersionFamily } from './products.js';

/** Display string for a raw `/FirmwareVersion` value; null when unknown or malformed. */
export function formatFirmwareVersion(family: VersionFamily, raw: unknown): string | null {
  if (family === 'gx') return typeof raw === 'string' && parseVersion(raw) ? raw : null;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0) return null;
  if (family === 'vebus') return `v${raw.toString(16)}`;
  if (raw === 0xffffff) return null;
  if (raw > 0xffff) {
    const main = raw >> 8;
    const beta = raw & 0xff;
    const base = dotted(main);
    return beta === 0xff || beta === 0 ? base : `${base}~${beta.toString(16).padStart(2, '0')}`;
  }
  return dotted(raw);
}

/** The raw `/FirmwareVersion` value a device of this family reports for a display string. */
export function encodeFirmwareVersion(family: VersionFamily, version: string): string | number | null {
  const parsed = parseVersion(version);
  if (!parsed) return null;
  if (family === 'gx') return version;
  if (family === 'vebus') {
    if (parsed.parts.length !== 1 || parsed.beta !== null) return null;
    return parseInt(parsed.text[0], 16);
  }
  if (parsed.parts.length !== 2) return null;
  const main = parseInt(parsed.text[0] + parsed.text[1].padStart(2, '0'), 16);
  if (parsed.beta === null) return main;
  return (main << 8) | parseInt(parsed.betaText ?? '0', 16);
}

interface ParsedVersion {
  parts: number[];
  text: string[];
  beta: number | null;
  betaText: string | null;
}

const VERSION_RE = /^v([0-9a-f]+(?:\.[0-9a-f]+)*)(?:~([0-9a-f]+))?$/i;

/** Parses `v3.70`, `v3.70~33`, `v1.57`, `v504`; null for anything else. */
export function parseVersion(version: string): ParsedVersion | null {
  const m = VERSION_RE.exec(version);
  if (!m) return null;
  const text = m[1].split('.');
  // Segments are compared as hex: order-preserving for decimal-looking segments too.
  return {
    parts: text.map((t) => parseInt(t, 16)),
    text,
    beta: m[2] === undefined ? null : parseInt(m[2], 16),
    betaText: m[2] ?? null,
  };
}

export function isVersion(value: unknown): value is string {
  return typeof value === 'string' && parseVersion(value) !== null;
}

/** Negative when a < b, 0 when equal, positive when a > b. Throws on unparsable input. */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new Error(`not a firmware version: ${!pa ? a : b}`);
  const n = Math.max(pa.parts.length, pb.parts.length);
  for (let i = 0; i < n; i++) {
    const d = (pa.parts[i] ?? 0) - (pb.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  // A beta sorts before its release.
  const ba = pa.beta ?? Number.POSITIVE_INFINITY;
  const bb = pb.beta ?? Number.POSITIVE_INFINITY;
  return ba === bb ? 0 : ba < bb ? -1 : 1;
}

function dotted(value: number): string {
  const hex = value.toString(16).padStart(3, '0');
  return `v${hex.slice(0, -2)}.${hex.slice(-2)}`;
}
