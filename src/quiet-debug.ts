/**
 * `debug` loggers that are off cost nothing. Imported first by every entry point, before anything
 * loads `debug` or mqtt-packet.
 *
 * mqtt-packet, which parses and writes every MQTT packet for aedes and mqtt.js, traces each step
 * through `debug`, about ten calls per packet; a `debug` logger builds the array of its arguments
 * before it finds its namespace off. mqtt-packet takes its two loggers once, when it loads, from
 * `require('debug')(namespace)`, and offers no option to pass another (mqtt.js does: connect.ts). So
 * the factory in `debug`'s module cache is wrapped before that happens: a namespace that is off at
 * that moment gets a logger that does nothing, one that is on gets `debug`'s own. `DEBUG` is read at
 * start (as `debug` does), so `DEBUG=mqtt-packet:* npm start` still traces; what no longer works is
 * turning a namespace on later with `debug.enable()` for a logger made before. Every other package
 * that makes its loggers after this (Express, ioredis, BullMQ) gets the same.
 */
import { createRequire } from 'node:module';

/** The part of `debug`'s logger interface its users touch. */
export interface Logger {
  (...args: unknown[]): void;
  namespace: string;
  enabled: boolean;
  extend(namespace: string, delimiter?: string): Logger;
  destroy(): boolean;
  log?: (...args: unknown[]) => void;
}

export interface Factory {
  (namespace: string): Logger;
  enabled(namespace: string): boolean;
}

const kQuiet = Symbol.for('fleetflash.quietDebug');

/** `createDebug` with off namespaces answered by loggers that do nothing; its own functions kept. */
export function quietFactory(createDebug: Factory): Factory {
  if (kQuiet in createDebug) return createDebug;
  const quiet = (namespace: string): Logger => {
    const log = function quietDebug(): void {} as unknown as Logger;
    log.namespace = namespace;
    log.enabled = false;
    log.extend = (name, delimiter = ':') => factory(namespace + delimiter + name);
    log.destroy = () => false;
    return log;
  };
  const factory = Object.assign(
    (namespace: string) => (createDebug.enabled(namespace) ? createDebug(namespace) : quiet(namespace)),
    createDebug,
  );
  Object.assign(factory, { debug: factory, default: factory, [kQuiet]: true });
  return factory;
}

/**
 * Wraps, in the module cache, the `debug` that `fromModule` (a package name) loads. False when either
 * cannot be found (nothing to quiet; never an error at start-up).
 */
export function quietDebugOf(fromModule: string): boolean {
  const requireHere = createRequire(import.meta.url);
  let id: string;
  let requireThere: NodeJS.Require;
  try {
    requireThere = createRequire(requireHere.resolve(fromModule));
    id = requireThere.resolve('debug');
    requireThere(id);
  } catch {
    return false;
  }
  const cached = requireThere.cache[id];
  if (!cached) return false;
  cached.exports = quietFactory(cached.exports as Factory);
  return true;
}

quietDebugOf('mqtt-packet');
