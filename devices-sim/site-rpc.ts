/**
 * The firmware RPC of a simulated site on `P/<id>/in/<rpcId>`: validates the request with the
 * protocol module, answers on `P/<id>/out/<rpcId>`, and starts accepted updates. A malformed
 * request gets a `bad-request` answer and a log line, never an exception.
 */
import {
  parseJsonPayload,
  parseLocalDevice,
  parseRpcRequest,
  type InstallAccepted,
  type InstallParams,
} from '../src/protocol/index.js';
import { planInstall } from './fault-plan.js';
import { admitInstall } from './install-admission.js';
import type { DeviceExecution, SimDevice } from './sim-device.js';
import { SIM_ERROR_CODES, simError } from './sim-errors.js';
import { UpdateRunner, type UpdateHost } from './update-runner.js';

/** What the RPC handler needs from its site. */
export interface RpcHost extends UpdateHost {
  readonly portalId: string;
  device(service: string, instance: number): SimDevice | undefined;
}

export function handleRpcRequest(site: RpcHost, rpcId: string, payload: Buffer): void {
  const request = parseRpcRequest(parseJsonPayload(payload));
  if ('invalid' in request) {
    site.ctx.logger.warn({ portalId: site.portalId, rpcId, reason: request.invalid }, 'bad RPC request');
    site.sendRpc(rpcId, { error: simError(SIM_ERROR_CODES.badRequest, request.invalid) });
    return;
  }
  const local = parseLocalDevice(request.params.device);
  const device = local && site.device(local.service, local.instance);
  if (!device) {
    site.sendRpc(rpcId, {
      error: simError(
        SIM_ERROR_CODES.unknownDevice,
        `no device ${request.params.device} on ${site.portalId}`,
      ),
    });
    return;
  }
  if (request.method === 'firmware.status') {
    site.sendRpc(
      rpcId,
      device.online
        ? { result: device.status() }
        : { error: simError(SIM_ERROR_CODES.deviceOffline, `${device.local} is not on the bus`) },
    );
    return;
  }
  install(site, device, rpcId, request.params);
}

function install(site: RpcHost, device: SimDevice, rpcId: string, params: InstallParams): void {
  const { ctx } = site;
  const plan = planInstall(
    ctx.options.seed,
    device.deviceId,
    params.executionId,
    ctx.options.faults,
    ctx.options.timingSpread,
  );
  const admission = admitInstall(device, params, plan);
  const record = { executionId: params.executionId, jobId: params.jobId, rpcId, at: Date.now() };

  if (admission.kind === 'duplicate') {
    const known = device.execution(params.executionId)!;
    // Later events follow the newest request: a re-attaching worker may listen on its own rpc id.
    known.rpcId = rpcId;
    ctx.truth.recordInstall(device.deviceId, { ...record, outcome: 'duplicate', code: null });
    site.sendRpc(rpcId, { result: accepted(params.executionId, true) });
    return;
  }
  if (admission.kind === 'refused') {
    ctx.truth.recordInstall(device.deviceId, { ...record, outcome: 'refused', code: admission.error.code });
    ctx.logger.info(
      { deviceId: device.deviceId, executionId: params.executionId, code: admission.error.code },
      'install refused',
    );
    site.sendRpc(rpcId, { error: admission.error });
    return;
  }

  const exec: DeviceExecution = {
    executionId: params.executionId,
    jobId: params.jobId,
    state: 'running',
    phase: 'downloading',
    progress: 0,
    error: null,
    targetVersion: params.version,
    rpcId,
    fromVersion: device.version,
    plan,
  };
  device.begin(exec);
  ctx.truth.recordInstall(device.deviceId, { ...record, outcome: 'accepted', code: null });
  const truth = ctx.truth.beginExecution({
    deviceId: device.deviceId,
    executionId: params.executionId,
    jobId: params.jobId,
    fault: plan.fault,
    fromVersion: device.version,
    targetVersion: params.version,
    acceptedAt: record.at,
  });
  // The answer goes out before the first progress event: same client, same order on the wire.
  site.sendRpc(rpcId, { result: accepted(params.executionId, false) });
  ctx.logger.info(
    { deviceId: device.deviceId, executionId: params.executionId, fault: plan.fault },
    'install accepted',
  );
  void new UpdateRunner(site, device, exec, params, truth).run();
}

function accepted(executionId: string, duplicate: boolean): InstallAccepted {
  return { accepted: true, executionId, duplicate };
}
