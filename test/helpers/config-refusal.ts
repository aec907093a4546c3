/** What the service's configuration refuses to start with, for tests of parseConfig's checks. */
import { parseConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

/** The ConfigError a start with `env` is refused with, or null when it starts; any other error is thrown. */
export function configRefusal(env: Record<string, string>): ConfigError | null {
  try {
    parseConfig(env);
    return null;
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
}
