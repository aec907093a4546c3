/**
 * A plain broker, an image server, a simulated fleet and a probe client, wired together for the
 * simulator's integration tests, with small helpers for the firmware RPC.
 */
import { parseRpcOut, type DeviceStatus, type ErrorInfo } from '../../src/protocol/index.js';
import {
  startFleet,
  type Fleet,
  type FleetOptions,
  type SimDevice,
  type SimSite,
} from '../../devices-sim/index.js';
import { startImageServer, type ImageServer, type ServedImage } from './image-server.js';
import { MqttProbe, type ProbeMessage } from './mqtt-probe.js';
import { startPlainBroker, type PlainBroker } from './plain-broker.js';

/** A newer version than the simulator's seeded ones, per service. */
export const TARGET_VERSION: Record<string, string> = {
  platform: 'v3.72',
  vebus: 'v510',
  solarcharger: 'v1.67',
  battery: 'v4.19',
};

export interface SimFixture {
  broker: PlainBroker;
  images: ImageServer;
  fleet: Fleet;
  probe: MqttProbe;
  image: ServedImage;
  /** The next unused site, subscribed and kept alive (one keepalive; use a long `aliveSec`). */
  aliveSite(): Promise<SimSite>;
  installParams(
    device: SimDevice,
    executionId: string,
    over?: Record<string, unknown>,
  ): Record<string, unknown>;
  install(
    site: SimSite,
    device: SimDevice,
    executionId: string,
    over?: Record<string, unknown>,
  ): Promise<{ rpcId: string; body: Record<string, unknown> }>;
  status(
    site: SimSite,
    device: SimDevice,
  ): Promise<{ result?: DeviceStatus & { degraded: boolean }; error?: ErrorInfo }>;
  /** Progress and failed events of one RPC, validated by the protocol module. */
  events(
    site: SimSite,
    rpcId: string,
  ): { kind: string; phase?: string; progress?: number; error?: ErrorInfo }[];
  /** The `failed` event of an RPC. */
  failure(site: SimSite, rpcId: string, timeoutMs?: number): Promise<ErrorInfo>;
  /** A product's `/Connected` 1 after it returned from its reboot. */
  returned(site: SimSite, device: SimDevice, from: number, timeoutMs?: number): Promise<ProbeMessage>;
  close(): Promise<void>;
}

export async function startSimFixture(
  options: Omit<FleetOptions, 'url' | 'credentials'>,
  imageBytes = 96 * 1024,
): Promise<SimFixture> {
  const [broker, images] = await Promise.all([startPlainBroker(), startImageServer()]);
  const image = images.add(imageBytes, 'sig-4f2a');
  const fleet = await startFleet({ credentials: () => 'x', ...options, url: broker.url });
  const probe = await MqttProbe.connect(broker.url);
  let nextSite = 0;

  const installParams = (device: SimDevice, executionId: string, over: Record<string, unknown> = {}) => ({
    device: device.local,
    url: image.url,
    sha256: image.sha256,
    size: image.size,
    version: TARGET_VERSION[device.service],
    productIds: [device.product.productId],
    jobId: 'jsim0001',
    executionId,
    ...over,
  });

  const events = (site: SimSite, rpcId: string) =>
    probe
      .since(0, (m) => m.topic === `P/${site.portalId}/out/${rpcId}`)
      .map((m) => parseRpcOut(JSON.parse(m.text)))
      .filter((m) => m?.kind === 'progress' || m?.kind === 'failed') as {
      kind: string;
      phase?: string;
      progress?: number;
      error?: ErrorInfo;
    }[];

  return {
    broker,
    images,
    fleet,
    probe,
    image,
    installParams,
    events,
    async aliveSite() {
      const site = fleet.sites[nextSite++];
      if (!site) throw new Error('the fixture fleet has no unused site left');
      await probe.subscribe(`N/${site.portalId}/#`, `P/${site.portalId}/out/+`);
      const from = probe.mark();
      probe.publish(`R/${site.portalId}/keepalive`, { 'keepalive-options': ['suppress-republish'] });
      await probe.next((m) => m.topic === `N/${site.portalId}/heartbeat`, 5000, from);
      return site;
    },
    install: (site, device, executionId, over) =>
      probe.rpc(site.portalId, 'firmware.install', installParams(device, executionId, over)),
    async status(site, device) {
      return (await probe.rpc(site.portalId, 'firmware.status', { device: device.local })).body as never;
    },
    async failure(site, rpcId, timeoutMs = 5000) {
      const m = await probe.next(
        (x) => x.topic === `P/${site.portalId}/out/${rpcId}` && x.text.includes('"event":"failed"'),
        timeoutMs,
        0,
        `failed event on ${rpcId}`,
      );
      return (JSON.parse(m.text) as { error: ErrorInfo }).error;
    },
    returned(site, device, from, timeoutMs = 5000) {
      const topic = `N/${site.portalId}/${device.service}/${device.instance}/Connected`;
      return probe.next(
        (m) => m.topic === topic && m.text === '{"value":1}',
        timeoutMs,
        from,
        `${device.deviceId} back on the bus`,
      );
    },
    async close() {
      await probe.close();
      await fleet.stop();
      await Promise.all([images.close(), broker.close()]);
    },
  };
}
