/**
 * A full garbage collection in the service process, through its inspector (`--inspect`), so that
 * memory figures measure what is live rather than how far the collector happened to be behind.
 */
import WebSocket from 'ws';

/** Runs `HeapProfiler.collectGarbage` in the process listening for the inspector on `port`. */
export async function collectGarbage(port: number): Promise<void> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  try {
    // Twice: the first run frees what the second can then compact away (weak references, finalizers).
    for (const id of [1, 2]) {
      await new Promise<void>((resolve, reject) => {
        const onMessage = (data: WebSocket.RawData) => {
          const m = JSON.parse(data.toString()) as { id?: number; error?: { message: string } };
          if (m.id !== id) return;
          ws.off('message', onMessage);
          if (m.error) reject(new Error(m.error.message));
          else resolve();
        };
        ws.on('message', onMessage);
        ws.send(JSON.stringify({ id, method: 'HeapProfiler.collectGarbage' }));
      });
    }
  } finally {
    ws.close();
  }
}
