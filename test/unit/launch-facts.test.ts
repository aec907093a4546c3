/**
 * The worker's per-job cache of what executions need from their job: one read per job however many
 * executions start at once, nothing remembered for a missing job or a failed read, bounded size.
 */
import { LaunchFactsCache } from '../../src/queue/launch-facts.js';
import type { FirmwareStore } from '../../src/store/firmware-store.js';
import type { JobStore } from '../../src/store/job-store.js';

function stores(jobs: Record<string, { firmwareId: string }>, fail = { next: false }) {
  const reads = { jobs: 0, firmware: 0 };
  const jobStore = {
    get: async (id: string) => {
      reads.jobs++;
      if (fail.next) {
        fail.next = false;
        throw new Error('redis down');
      }
      const j = jobs[id];
      return j ? { id, firmwareId: j.firmwareId, timeouts: { totalMs: 1 }, retry: { maxAttempts: 1, backoffMs: 1000 } } : null;
    },
  } as unknown as JobStore;
  const firmwareStore = {
    get: async (id: string) => {
      reads.firmware++;
      return { id, sha256: id, version: 'v1.00' };
    },
  } as unknown as FirmwareStore;
  return { jobStore, firmwareStore, reads };
}

describe('LaunchFactsCache', () => {
  it('reads a job once for many concurrent executions', async () => {
    const { jobStore, firmwareStore, reads } = stores({ j1: { firmwareId: 'f1' } });
    const cache = new LaunchFactsCache(jobStore, firmwareStore);
    const all = await Promise.all(Array.from({ length: 100 }, () => cache.get('j1')));
    expect(all.every((f) => f?.firmware.id === 'f1' && f.retry.maxAttempts === 1)).toBe(true);
    expect(await cache.get('j1')).toBe(all[0]);
    expect(reads).toEqual({ jobs: 1, firmware: 1 });
  });

  it('remembers neither a missing job nor a failed read', async () => {
    const fail = { next: true };
    const jobs: Record<string, { firmwareId: string }> = {};
    const { jobStore, firmwareStore, reads } = stores(jobs, fail);
    const cache = new LaunchFactsCache(jobStore, firmwareStore);
    await expect(cache.get('j1')).rejects.toThrow('redis down');
    expect(await cache.get('j1')).toBeNull();
    jobs.j1 = { firmwareId: 'f1' };
    expect((await cache.get('j1'))?.firmware.id).toBe('f1');
    expect(reads.jobs).toBe(3);
  });

  it('forgets the oldest job beyond its size', async () => {
    const { jobStore, firmwareStore, reads } = stores({ a: { firmwareId: 'f' }, b: { firmwareId: 'f' }, c: { firmwareId: 'f' } });
    const cache = new LaunchFactsCache(jobStore, firmwareStore, 2);
    for (const id of ['a', 'b', 'c', 'a']) await cache.get(id);
    expect(reads.jobs).toBe(4);
  });
});
