/**
 * Where the CLI gets each site's MQTT password: a secrets file, the API's site registration
 * (`POST /api/sites`), or one shared password.
 */
import { readFile } from 'node:fs/promises';
import type { CredentialsSource } from './cli-args.js';

/** The API registers at most this many sites per request. */
export const PROVISION_CHUNK = 1000;

export type Credentials = (portalId: string) => string;

export async function loadCredentials(
  source: CredentialsSource,
  portalIds: readonly string[],
  fetchImpl: typeof fetch = fetch,
): Promise<Credentials> {
  if (source.kind === 'password') return () => source.password;
  const secrets =
    source.kind === 'secrets-file'
      ? await readSecretsFile(source.path)
      : await provisionSites(source.url, source.token, portalIds, fetchImpl);
  const missing = portalIds.filter((id) => !secrets.has(id));
  if (missing.length > 0) {
    throw new Error(
      `no secret for ${missing.length} of ${portalIds.length} sites (first: ${missing[0]}); check --seed and --salt`,
    );
  }
  return (portalId) => secrets.get(portalId) ?? '';
}

/** `{ "<portalId>": "<secret>" }`. */
export async function readSecretsFile(path: string): Promise<Map<string, string>> {
  const parsed = JSON.parse(await readFile(path, 'utf8')) as unknown;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new Error(`${path}: expected a JSON object of portalId → secret`);
  const out = new Map<string, string>();
  for (const [id, secret] of Object.entries(parsed)) {
    if (typeof secret !== 'string') throw new Error(`${path}: the secret of ${id} is not a string`);
    out.set(id, secret);
  }
  return out;
}

/** Registers the sites in chunks of 1000: `POST <base>/api/sites {"sites":[{"portalId"}]}` → `201 {"sites":[{"portalId","secret"}]}`. */
export async function provisionSites(
  base: string,
  token: string,
  portalIds: readonly string[],
  fetchImpl: typeof fetch = fetch,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const endpoint = new URL('/api/sites', base).toString();
  for (let i = 0; i < portalIds.length; i += PROVISION_CHUNK) {
    const chunk = portalIds.slice(i, i + PROVISION_CHUNK);
    const res = await fetchImpl(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sites: chunk.map((portalId) => ({ portalId })) }),
    });
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`POST ${endpoint} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    }
    const body = (await res.json()) as { sites?: { portalId?: unknown; secret?: unknown }[] };
    for (const s of body.sites ?? []) {
      if (typeof s.portalId === 'string' && typeof s.secret === 'string') out.set(s.portalId, s.secret);
    }
  }
  return out;
}
