/**
 * Command-line flags of `npm run sim`, parsed into a typed object (no I/O here, so it is testable).
 */
import { isFaultKind, isTimingSpread, TYPICAL_TIMING_SPREAD, type FaultRates } from './fault-plan.js';
import { PRODUCT_KINDS, type ProductKind, type ProductMix } from './site-plan.js';

export const USAGE = `usage: npm run sim -- --sites N --url mqtt://host:port [options]

  --sites N              number of simulated GX sites (required)
  --url URL              broker URL (required), e.g. mqtt://127.0.0.1:1884
  --seed N               same seed, same fleet (default 1)
  --time-scale X         divide real durations by X (default 1)
  --mix K=N,...          per-site product counts: vebus, solarcharger, battery
  --faults F=R,...       fault rates 0..1, e.g. checksumMismatch=0.01,neverReturns=0.005
  --timing-spread S      each install's durations times a seeded factor in [1-S, 1+S], 0 <= S < 1
                         (default 0.2; 0: every device of a kind in lock step)
  --connect-rate N       connections per second (default 500)
  --salt S               mixed into portal ids (default none)
  --log-level L          pino level for the simulator's log on stderr (default warn)
credentials (one of):
  --secrets-file FILE    JSON {"<portalId>": "<secret>"}
  --provision URL --token TOKEN
                         register the sites at POST <URL>/api/sites and use the secrets it returns
  --password P           one password for every site`;

export type CredentialsSource =
  | { kind: 'secrets-file'; path: string }
  | { kind: 'provision'; url: string; token: string }
  | { kind: 'password'; password: string };

export interface CliArgs {
  sites: number;
  url: string;
  seed: number;
  timeScale: number;
  mix: ProductMix;
  faults: FaultRates;
  timingSpread: number;
  connectRate: number | undefined;
  salt: string;
  logLevel: string;
  credentials: CredentialsSource;
}

/** A flag problem; the CLI prints the message and the usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const FLAGS = new Set([
  'sites',
  'url',
  'seed',
  'time-scale',
  'mix',
  'faults',
  'timing-spread',
  'connect-rate',
  'salt',
  'log-level',
  'secrets-file',
  'provision',
  'token',
  'password',
  'help',
]);

export function parseCliArgs(argv: readonly string[]): CliArgs {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (!FLAGS.has(name)) throw new UsageError(`unknown flag --${name}`);
    if (name === 'help') throw new UsageError('');
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    values.set(name, value);
  }
  const sites = integer(values, 'sites');
  const url = values.get('url');
  if (sites === undefined) throw new UsageError('--sites is required');
  if (!url) throw new UsageError('--url is required');
  return {
    sites,
    url,
    seed: integer(values, 'seed') ?? 1,
    timeScale: number(values, 'time-scale') ?? 1,
    mix: pairs(values.get('mix'), '--mix', (k, v) => {
      if (!(PRODUCT_KINDS as readonly string[]).includes(k))
        throw new UsageError(`--mix: unknown product kind '${k}'`);
      return [k as ProductKind, toInt(v, `--mix ${k}`)];
    }),
    faults: pairs(values.get('faults'), '--faults', (k, v) => {
      if (!isFaultKind(k)) throw new UsageError(`--faults: unknown fault '${k}'`);
      return [k, toNumber(v, `--faults ${k}`)];
    }),
    timingSpread: timingSpread(values),
    connectRate: number(values, 'connect-rate'),
    salt: values.get('salt') ?? '',
    logLevel: values.get('log-level') ?? 'warn',
    credentials: credentialsSource(values),
  };
}

function timingSpread(values: Map<string, string>): number {
  const spread = number(values, 'timing-spread') ?? TYPICAL_TIMING_SPREAD;
  if (!isTimingSpread(spread)) throw new UsageError(`--timing-spread must be >= 0 and < 1, got ${spread}`);
  return spread;
}

function credentialsSource(values: Map<string, string>): CredentialsSource {
  const file = values.get('secrets-file');
  const provision = values.get('provision');
  const password = values.get('password');
  const chosen = [file, provision, password].filter((v) => v !== undefined).length;
  if (chosen !== 1) throw new UsageError('give exactly one of --secrets-file, --provision, --password');
  if (file !== undefined) return { kind: 'secrets-file', path: file };
  if (provision !== undefined) {
    const token = values.get('token');
    if (!token) throw new UsageError('--provision needs --token');
    return { kind: 'provision', url: provision, token };
  }
  return { kind: 'password', password: password! };
}

function pairs<K extends string, V>(
  text: string | undefined,
  flag: string,
  parse: (k: string, v: string) => [K, V],
): Partial<Record<K, V>> {
  const out: Partial<Record<K, V>> = {};
  if (!text) return out;
  for (const item of text.split(',')) {
    const [k, v] = item.split('=');
    if (!k || v === undefined) throw new UsageError(`${flag}: expected name=value, got '${item}'`);
    const [key, value] = parse(k.trim(), v.trim());
    out[key] = value;
  }
  return out;
}

function integer(values: Map<string, string>, name: string): number | undefined {
  const v = values.get(name);
  return v === undefined ? undefined : toInt(v, `--${name}`);
}

function number(values: Map<string, string>, name: string): number | undefined {
  const v = values.get(name);
  return v === undefined ? undefined : toNumber(v, `--${name}`);
}

function toInt(v: string, what: string): number {
  const n = toNumber(v, what);
  if (!Number.isInteger(n)) throw new UsageError(`${what} must be an integer, got '${v}'`);
  return n;
}

function toNumber(v: string, what: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${what} must be a number, got '${v}'`);
  return n;
}
