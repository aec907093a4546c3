/**
 * The CONNECT a simulated GX sends (client id `gx-<portal id>`, the portal id as user name, MQTT
 * 3.1.1, clean session), for tests that speak MQTT packets directly.
 */
import type { IConnectPacket } from 'mqtt-packet';

export function siteConnect(portalId: string, password: string): IConnectPacket {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: `gx-${portalId}`,
    keepalive: 30,
    username: portalId,
    password: Buffer.from(password),
  };
}
