/**
 * Command line of `npm run bench`: options over defaults, then checked at once with a message that
 * names the bad option.
 */

import { isTimingSpread, TYPICAL_TIMING_SPREAD } from '../../devices-sim/fault-plan.js';
import { MACHINE_MOSQUITTO_PORT } from './bench-proc.js';

export type BrokerMode = 'embedded' | 'mosquitto';

export interface BenchArgs {
  /** Simulated sites (one GX and one solar charger each); the job updates every solar charger. */
  sites: number;
  /** Measured runs per broker (after one warm-up job that is not counted). */
  runs: number;
  brokers: BrokerMode[];
  /** The Mosquitto the `mosquitto` runs use: the one listening on this local port (the machine's: 1883). */
  mosquittoPort: number;
  /**
   * A WebSocket listener of that Mosquitto (`protocol websockets`) on this local port: the `mosquitto`
   * runs' browser-like watcher connects there, as the embedded runs' does to the service's `/mqtt`.
   * Null: over TCP to its MQTT port (the machine's Mosquitto has no WebSocket listener).
   */
  mosquittoWsPort: number | null;
  /**
   * `split`: the front (api, broker) and a worker in two processes, as deployed; `single`: one process
   * with every role; `apart`: the embedded broker, the api and a worker in three processes.
   */
  topology: 'single' | 'split' | 'apart';
  /** Simulator time scale: 38 makes a solar charger update (77 s real) take about 2 s. */
  timeScale: number;
  /** Simulator timing spread: each install's durations times a seeded factor in [1 − s, 1 + s]; 0: lock step. */
  timingSpread: number;
  /** Site connections per second while the fleet connects. */
  connectRate: number;
  /** Executions in flight while status latency is measured. */
  latencyConcurrency: number;
  /** Concurrent HTTP clients launching jobs, and how many launches in all. */
  launchClients: number;
  launches: number;
  /** Devices per launched job in the launch test. */
  launchDevices: number;
  /** Devices in the warm-up job (not counted). */
  warmupDevices: number;
  /** Seconds the raw broker rate is measured for. */
  ceilingSec: number;
  /** Jobs through the empty BullMQ worker. */
  ceilingJobs: number;
  /** WORKER_CONCURRENCY for the service; null: the service's default. */
  workerConcurrency: number | null;
  /** WORKER_START_WINDOW for the service (0: none); null: the service's default. */
  startWindow: number | null;
  logLevel: string;
  /** Write V8 CPU profiles of the service processes and the simulator (`--cpu-prof`) into this directory. */
  profileDir: string | null;
  /** Write sampling allocation profiles of the service processes over the measured throughput phase into this directory. */
  allocProfileDir: string | null;
  /** More Node flags for the service process, e.g. `--heapsnapshot-signal=SIGUSR2`. */
  serviceNodeArgs: string[];
  quick: boolean;
}

export const USAGE = `npm run bench -- [options]

  --sites N                 simulated sites, one solar charger each (default 2000; 10000 for the target)
  --runs N                  measured runs per broker, after a warm-up (default 3)
  --broker M                embedded | mosquitto | both (default both)
  --mosquitto-port N        the Mosquitto runs use the one listening on 127.0.0.1:N (default 1883, the
                            machine's); its process is found by the port, for its CPU and memory
  --mosquitto-ws-port N     the Mosquitto runs' browser-like watcher connects over WebSocket to that
                            Mosquitto's listener on 127.0.0.1:N (protocol websockets), as the
                            embedded runs' does (default: over TCP to its MQTT port)
  --topology T              split: [api,broker] + [worker] processes, as docker-compose deploys it;
                            single: one process with every role, as npm run demo;
                            apart: [broker] + [api] + [worker], the embedded broker in a process of its
                            own (with Mosquitto the same as split) (default split)
  --time-scale X            simulator time scale (default 38: one update takes ~2 s)
  --timing-spread S         each install's durations times a seeded factor in [1-S, 1+S], 0 <= S < 1
                            (default 0.2, as the simulator's CLI; 0: devices started together in lock step)
  --connect-rate N          site connections per second (default 1000)
  --latency-concurrency N   executions in flight while status latency is measured (default 1000)
  --launch-clients N        concurrent HTTP clients in the launch test (default 16)
  --launches N              jobs launched in the launch test (default 400)
  --worker-concurrency N    WORKER_CONCURRENCY of the service (default: the service's own)
  --start-window N          WORKER_START_WINDOW of the service, 0 for none (default: the service's own)
  --log-level L             LOG_LEVEL of the service (default warn)
  --profile DIR             write CPU profiles of the service processes and the simulator (node --cpu-prof) to DIR
  --alloc-profile DIR       write what each service process allocates during the measured job (sampling heap
                            profiles, collected objects included; open in DevTools) to DIR, and print KB per execution
  --node-args "FLAGS"       more Node flags for the service process (e.g. --heapsnapshot-signal=SIGUSR2)
  --quick                   smoke run: 200 sites, 1 run, embedded broker, short tests (< 60 s)
  --help`;

export class UsageError extends Error {}

/**
 * The order of the measured runs: the brokers alternate, and every other round runs them in reverse
 * (embedded, Mosquitto, Mosquitto, embedded, …), so neither always goes first: a machine drifting
 * during a set hits both alike, and a difference that follows the broker, not the position, shows.
 */
export function runOrder(brokers: readonly BrokerMode[], runs: number): { mode: BrokerMode; run: number }[] {
  const order: { mode: BrokerMode; run: number }[] = [];
  for (let run = 1; run <= runs; run++) {
    const round = run % 2 === 1 ? brokers : [...brokers].reverse();
    for (const mode of round) order.push({ mode, run });
  }
  return order;
}

export function parseBenchArgs(argv: readonly string[]): BenchArgs {
  const quick = argv.includes('--quick');
  const a: BenchArgs = {
    sites: quick ? 200 : 2000,
    runs: quick ? 1 : 3,
    brokers: quick ? ['embedded'] : ['embedded', 'mosquitto'],
    mosquittoPort: MACHINE_MOSQUITTO_PORT,
    mosquittoWsPort: null,
    topology: 'split',
    timeScale: 38,
    timingSpread: TYPICAL_TIMING_SPREAD,
    connectRate: 1000,
    latencyConcurrency: quick ? 100 : 1000,
    launchClients: quick ? 4 : 16,
    launches: quick ? 40 : 400,
    launchDevices: 10,
    warmupDevices: quick ? 50 : 500,
    ceilingSec: quick ? 2 : 5,
    ceilingJobs: quick ? 2000 : 20_000,
    workerConcurrency: null,
    startWindow: null,
    logLevel: 'warn',
    profileDir: null,
    allocProfileDir: null,
    serviceNodeArgs: [],
    quick,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--quick') continue;
    if (flag === '--help' || flag === '-h') throw new UsageError('');
    const value = argv[i + 1];
    if (value === undefined || (value.startsWith('--') && flag !== '--node-args')) throw new UsageError(`${flag} needs a value`);
    i++;
    const int = (min: number, max: number): number => {
      const n = Number(value);
      if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be an integer ${min}..${max}, got '${value}'`);
      return n;
    };
    switch (flag) {
      case '--sites':
        a.sites = int(10, 20_000);
        break;
      case '--runs':
        a.runs = int(1, 20);
        break;
      case '--broker':
        if (value === 'both') a.brokers = ['embedded', 'mosquitto'];
        else if (value === 'embedded' || value === 'mosquitto') a.brokers = [value];
        else throw new UsageError(`--broker must be embedded, mosquitto or both, got '${value}'`);
        break;
      case '--mosquitto-port':
        a.mosquittoPort = int(1, 65_535);
        break;
      case '--mosquitto-ws-port':
        a.mosquittoWsPort = int(1, 65_535);
        break;
      case '--topology':
        if (value !== 'single' && value !== 'split' && value !== 'apart') throw new UsageError(`--topology must be single, split or apart, got '${value}'`);
        a.topology = value;
        break;
      case '--time-scale': {
        const x = Number(value);
        if (!(x > 0) || x > 100_000) throw new UsageError(`--time-scale must be a number > 0, got '${value}'`);
        a.timeScale = x;
        break;
      }
      case '--timing-spread': {
        const s = Number(value);
        if (value.trim() === '' || !isTimingSpread(s)) throw new UsageError(`--timing-spread must be a number >= 0 and < 1, got '${value}'`);
        a.timingSpread = s;
        break;
      }
      case '--connect-rate':
        a.connectRate = int(1, 100_000);
        break;
      case '--latency-concurrency':
        a.latencyConcurrency = int(1, 20_000);
        break;
      case '--launch-clients':
        a.launchClients = int(1, 1000);
        break;
      case '--launches':
        a.launches = int(1, 100_000);
        break;
      case '--worker-concurrency':
        a.workerConcurrency = int(1, 100_000);
        break;
      case '--start-window':
        a.startWindow = int(0, 100_000);
        break;
      case '--log-level':
        if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(value)) throw new UsageError(`--log-level: unknown level '${value}'`);
        a.logLevel = value;
        break;
      case '--profile':
        a.profileDir = value;
        break;
      case '--alloc-profile':
        a.allocProfileDir = value;
        break;
      case '--node-args':
        a.serviceNodeArgs = value.split(/\s+/).filter(Boolean);
        break;
      default:
        throw new UsageError(`unknown option ${flag}`);
    }
  }
  return a;
}
