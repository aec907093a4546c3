/**
 * Error codes an execution can end with, in words an operator understands. The Victron codes come
 * from the remote-update tooling (see shared/reference/victron-mqtt.md); the others from the update
 * state machine (src/update/machine.ts) and the simulator.
 */
import { PHASES } from '../../src/protocol/index.js';

const KNOWN: Readonly<Record<string, string>> = {
  'device-busy': 'the device is already running another update',
  'site-busy': 'another device of the site is updating (a GX and the devices behind it never update at once)',
  'checksum-mismatch': 'the downloaded image did not match its SHA-256',
  'vbdup-123': 'the firmware does not match the model',
  'vbdup-122': 'the VE.Bus interface did not respond',
  'mk2vsc-61': 'restoring the settings failed',
  '1341': 'not a Victron product',
  '1342': 'the device says it cannot be updated',
  '1343': 'the device is in the wrong mode for an update',
  '1344': 'the device is blacklisted for updates',
  'version-mismatch': 'the device came back with a different version than expected',
  incompatible: 'the image does not fit this product',
  'device-unreachable': 'the device did not answer',
  'unknown-device': 'the site does not know this device',
  'execution-lost': 'the device no longer knows this update',
  'device-failed': 'the device reports the update failed',
  interrupted: 'the GX rebooted while it was updating this device; it keeps its old firmware',
  'download-failed': 'the device could not download the image',
  canceled: 'canceled before the install was sent',
  timeout: 'the update took longer than its overall time limit',
};

/** The meaning of an error code in words; the code itself when it is unknown. */
export function describeErrorCode(code: string): string {
  const known = KNOWN[code];
  if (known) return known;
  const timeout = /^timeout-(.+)$/.exec(code);
  if (timeout && (PHASES as readonly string[]).includes(timeout[1]))
    return `the ${timeout[1]} phase took too long`;
  return code;
}
