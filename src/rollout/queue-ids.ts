/**
 * Queue job ids of released executions. The first release of an execution uses the execution id
 * itself; a retry after a transient failure is a new release with its own id, since BullMQ keeps
 * finished jobs under their id and adding that id again would do nothing. Releasing the same
 * (execution, retry) twice is therefore a no-op, which makes re-enqueueing after a crash safe.
 */

/** `<executionId>` for the first attempt, `<executionId>.r<n>` for retry n. No `:`, never an integer. */
export function releaseQueueId(executionId: string, retries: number): string {
  return retries > 0 ? `${executionId}.r${retries}` : executionId;
}

/** Member of the release log and the unconfirmed set: `<deviceId>|<retries>`. */
export function releaseMember(deviceId: string, retries: number): string {
  return `${deviceId}|${retries}`;
}

export function parseReleaseMember(member: string): { deviceId: string; retries: number } {
  const bar = member.lastIndexOf('|');
  return { deviceId: member.slice(0, bar), retries: Number(member.slice(bar + 1)) || 0 };
}
