/**
 * fleetflash entry point: parses the configuration, starts the roles in `ROLE`, and shuts down
 * gracefully on SIGTERM/SIGINT (workers hand their executions over to other workers).
 */
// First: before anything loads mqtt-packet (see quiet-debug.ts).
import './quiet-debug.js';
import { parseConfig } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { startService } from './service/service.js';

/** A second signal, or a shutdown slower than this, ends the process at once. */
const SHUTDOWN_LIMIT_MS = 20_000;

async function main(): Promise<void> {
  let config;
  try {
    config = parseConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`fleetflash: bad configuration: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const service = await startService(config, logger);
  logger.info({ roles: [...config.roles], httpPort: service.httpPort, mqttPort: service.mqttPort }, 'fleetflash started');
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'shutting down');
    setTimeout(() => {
      logger.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS).unref();
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  // Configuration found bad only at start (e.g. an unreadable TLS_CERT_FILE): same message and code as a bad value.
  if (err instanceof ConfigError) {
    console.error(`fleetflash: bad configuration: ${err.message}`);
    process.exit(2);
  }
  console.error('fleetflash failed to start:', err);
  process.exit(1);
});
