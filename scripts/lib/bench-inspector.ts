/**
 * The service processes' inspectors (`--inspect`, loopback only): a full garbage collection before
 * memory is read, so that the figures measure what is live rather than how far the collector happened
 * to be behind; and, with `--alloc-profile`, a sampling profile of everything a process allocates.
 */
import WebSocket from 'ws';

/** One DevTools-protocol session with the process whose inspector listens on `port`. */
class InspectorSession {
  private nextId = 1;

  private constructor(private readonly ws: WebSocket) {}

  static async open(port: number): Promise<InspectorSession> {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const url = targets[0]?.webSocketDebuggerUrl;
    if (!url) throw new Error(`no inspector target on port ${port}`);
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return new InspectorSession(ws);
  }

  /** Sends one command and resolves with its result. */
  call<T = unknown>(method: string, params: object = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onMessage = (data: WebSocket.RawData) => {
        const m = JSON.parse(data.toString()) as { id?: number; result?: T; error?: { message: string } };
        if (m.id !== id) return;
        this.ws.off('message', onMessage);
        if (m.error) reject(new Error(m.error.message));
        else resolve(m.result as T);
      };
      this.ws.on('message', onMessage);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  close(): void {
    this.ws.close();
  }
}

/** Runs `HeapProfiler.collectGarbage` in the process listening for the inspector on `port`. */
export async function collectGarbage(port: number): Promise<void> {
  const session = await InspectorSession.open(port);
  try {
    // Twice: the first run frees what the second can then compact away (weak references, finalizers).
    await session.call('HeapProfiler.collectGarbage');
    await session.call('HeapProfiler.collectGarbage');
  } finally {
    session.close();
  }
}

/** A node of V8's sampling heap profile (what `HeapProfiler.stopSampling` returns; DevTools opens it as `.heapprofile`). */
export interface AllocationNode {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  selfSize: number;
  children: AllocationNode[];
}

/** Bytes the sampled allocations of a profile add up to (an estimate of everything allocated while it ran). */
export function allocatedBytes(head: AllocationNode): number {
  let total = 0;
  const stack = [head];
  for (let node = stack.pop(); node; node = stack.pop()) {
    total += node.selfSize;
    stack.push(...node.children);
  }
  return total;
}

/**
 * Starts sampling what the process on `port` allocates, objects already collected included (so the
 * profile shows the garbage the collector works through, not only what is still live). `stop()` ends
 * it and returns the profile.
 */
export async function sampleAllocations(
  port: number,
  intervalBytes = 32 * 1024,
): Promise<{ stop(): Promise<{ head: AllocationNode }> }> {
  const session = await InspectorSession.open(port);
  try {
    await session.call('HeapProfiler.enable');
    await session.call('HeapProfiler.startSampling', {
      samplingInterval: intervalBytes,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  } catch (err) {
    session.close();
    throw err;
  }
  return {
    stop: async () => {
      try {
        return (await session.call<{ profile: { head: AllocationNode } }>('HeapProfiler.stopSampling'))
          .profile;
      } finally {
        session.close();
      }
    },
  };
}
