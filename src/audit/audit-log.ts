/**
 * The audit trail: who did what, when, from where, and how it ended — one entry per mutating API
 * call by an authenticated operator, kept in Redis under the deployment's key prefix so every API
 * instance writes to and reads from the same trail.
 *
 * Entries live in a sorted set scored by an id from a counter, both written by one Lua script: ids
 * are unique and increasing across instances, `before=<id>` pages are stable while new entries
 * arrive, and the trail is capped (oldest dropped first) in the same atomic step. Entries never hold
 * a secret: the writer passes names and ids only, never bodies or headers.
 */
import type { Redis } from 'ioredis';
import type { OperatorRole } from '../config.js';
import type { Keys } from '../store/keys.js';

/** What an operator did. `other`: a mutating call to no known route (recorded all the same). */
export const AUDIT_ACTIONS = [
  'job.launch',
  'job.abort',
  'execution.cancel',
  'firmware.upload',
  'firmware.delete',
  'sites.register',
  'mqtt-credentials.issue',
  'other',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** How the call ended: 2xx/3xx, 4xx (refused: validation, role, conflict…), 5xx, or no answer (client left). */
export type AuditOutcome = 'succeeded' | 'refused' | 'failed' | 'aborted';

/** The ids a call acted on; only those known for the action are present. */
export interface AuditTarget {
  jobId?: string;
  deviceId?: string;
  firmwareId?: string;
  firmwareVersion?: string;
  /** Devices in a launch request. */
  devices?: number;
  /** Sites registered by the call (the first {@link MAX_AUDITED_IDS} of them) and how many in all. */
  portalIds?: string[];
  sites?: number;
  /** Jobs a browser token may watch. */
  jobs?: '*' | string[];
}

/** One entry of the trail. */
export interface AuditEntry {
  /** Increasing across the deployment; pass as `before` to page back. */
  id: number;
  /** When the call ended (ISO 8601). */
  at: string;
  /** Operator name (from API_TOKENS), never the token. */
  actor: string;
  role: OperatorRole;
  action: AuditAction;
  method: string;
  /** Request path without the query string. */
  path: string;
  target: AuditTarget;
  /** HTTP status answered; null when the client went away first. */
  status: number | null;
  outcome: AuditOutcome;
  requestId: string;
  /** The client's address as the HTTP server saw it. */
  remoteAddress: string | null;
}

/** Lists are capped so that one bulk registration of 10,000 sites does not make a 170 kB entry. */
export const MAX_AUDITED_IDS = 100;
export const DEFAULT_AUDIT_MAX_ENTRIES = 10_000;

/** KEYS: entries zset, id counter. ARGV: entry JSON without its id (an object), cap. Returns the id. */
const APPEND_ENTRY = `
local id = redis.call('INCR', KEYS[2])
local entry = '{"id":' .. id .. ',' .. string.sub(ARGV[1], 2)
redis.call('ZADD', KEYS[1], id, entry)
local cap = tonumber(ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n > cap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1) end
return id
`;

type AppendCommand = (entriesKey: string, seqKey: string, json: string, cap: number) => Promise<number>;

/** Reads and writes the audit trail of one deployment. */
export class AuditLog {
  readonly #redis: Redis;
  readonly #keys: Keys;
  readonly #maxEntries: number;
  readonly #pending = new Set<Promise<unknown>>();

  constructor(redis: Redis, keys: Keys, maxEntries = DEFAULT_AUDIT_MAX_ENTRIES) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
    }
    this.#redis = redis;
    this.#keys = keys;
    this.#maxEntries = maxEntries;
    if (!('ffAuditAppend' in redis))
      redis.defineCommand('ffAuditAppend', { numberOfKeys: 2, lua: APPEND_ENTRY });
  }

  /** Appends an entry; resolves with it, id included. */
  record(entry: Omit<AuditEntry, 'id'>): Promise<AuditEntry> {
    const append = (this.#redis as unknown as { ffAuditAppend: AppendCommand }).ffAuditAppend.bind(
      this.#redis,
    );
    const written = append(
      this.#keys.audit(),
      this.#keys.auditSeq(),
      JSON.stringify(entry),
      this.#maxEntries,
    ).then((id) => ({ id: Number(id), ...entry }));
    this.#pending.add(written);
    const forget = () => void this.#pending.delete(written);
    written.then(forget, forget);
    return written;
  }

  /**
   * Resolves once every {@link record} this instance started has been written (or failed), so a
   * read right after an audited call sees that call.
   */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }

  /** Newest first: at most `limit` entries with an id below `before` (all ids when omitted). */
  async list(limit: number, before?: number): Promise<AuditEntry[]> {
    const max = before === undefined ? '+inf' : `(${before}`;
    const raw = await this.#redis.zrevrangebyscore(this.#keys.audit(), max, '-inf', 'LIMIT', 0, limit);
    return raw.map((json) => JSON.parse(json) as AuditEntry);
  }
}
