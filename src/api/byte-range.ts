/**
 * `Range: bytes=…` for one resource (RFC 9110 §14). Only single ranges are served: a server may
 * ignore a Range header it does not want to honour (§14.2), and devices resuming a download ask
 * for one `bytes=<offset>-`.
 */

/** What to send: the whole file, one range, or 416. */
export type RangeDecision =
  { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

const SINGLE_RANGE_RE = /^bytes=(\d*)-(\d*)$/;

/**
 * Decides how to answer `header` for a resource of `size` bytes. Syntax it does not understand and
 * multi-range requests get the whole file (§14.2: a recipient may ignore Range).
 */
export function decideRange(header: string | undefined, size: number): RangeDecision {
  if (header === undefined) return { kind: 'full' };
  const m = SINGLE_RANGE_RE.exec(header.replace(/\s+/g, ''));
  if (!m) return { kind: 'full' };
  const [, first, last] = m;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    // Suffix range: the last N bytes (§14.1.1); N = 0 selects nothing.
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return { kind: 'full' }; // invalid range-spec: ignore the header
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: 'partial', start, end };
}
