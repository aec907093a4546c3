/** The protocol shared by the workers, the broker ACL, the simulator and the portal. No Node APIs. */
export * from './ids.js';
export * from './states.js';
export * from './topics.js';
export * from './products.js';
export * from './versions.js';
export * from './rpc.js';
export * from './fleet.js';
export * from './rollout.js';
