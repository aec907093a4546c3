/**
 * The driver's event queue: progress reports that queued up behind a save collapse to the furthest
 * one; every other event, and progress across another event, is handled in arrival order.
 */
import { takeNext } from '../../src/update/driver.js';
import type { MachineEvent } from '../../src/update/machine.js';

const p = (phase: 'downloading' | 'verifying' | 'installing', progress: number): MachineEvent => ({ type: 'progress', phase, progress });

function drain(queue: MachineEvent[]): MachineEvent[] {
  const out: MachineEvent[] = [];
  while (queue.length) out.push(takeNext(queue));
  return out;
}

describe('takeNext', () => {
  it('collapses adjacent progress to the furthest report', () => {
    expect(drain([p('downloading', 5), p('downloading', 10), p('downloading', 30), p('verifying', 60)])).toEqual([p('verifying', 60)]);
  });

  it('never collapses across another event', () => {
    const accepted: MachineEvent = { type: 'install-accepted' };
    expect(drain([p('downloading', 5), accepted, p('downloading', 10), p('downloading', 15)])).toEqual([
      p('downloading', 5),
      accepted,
      p('downloading', 15),
    ]);
  });

  it('keeps a report that a later, older one would undo', () => {
    expect(drain([p('installing', 70), p('downloading', 40)])).toEqual([p('installing', 70), p('downloading', 40)]);
    expect(drain([p('downloading', 40), p('downloading', 35)])).toEqual([p('downloading', 40), p('downloading', 35)]);
  });

  it('passes other events through one at a time', () => {
    const events: MachineEvent[] = [{ type: 'start' }, { type: 'lock-acquired' }, { type: 'timer', name: 'poll' }];
    expect(drain([...events])).toEqual(events);
  });
});
