/**
 * ImageCache over real files in a temporary directory: how often the disk is touched, what is kept
 * and for how long, and that memory stays within its bounds.
 */
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ImageCache, type ImageSource } from '../../src/store/image-cache.js';

let dir: string;
let now = 0;
const calls = { size: 0, read: 0 };

/** The files in `dir`, counting each look at the disk. */
const source: ImageSource = {
  async size(name) {
    calls.size++;
    try {
      return (await stat(path.join(dir, name))).size;
    } catch {
      return null;
    }
  },
  async read(name) {
    calls.read++;
    return readFile(path.join(dir, name));
  },
};

function cache(maxImageBytes = 1000, maxTotalBytes = 2500): ImageCache {
  return new ImageCache(source, { maxImageBytes, maxTotalBytes, recheckMs: 5000, now: () => now });
}

async function put(name: string, size: number): Promise<Buffer> {
  const bytes = Buffer.alloc(size, name.charCodeAt(0));
  await writeFile(path.join(dir, name), bytes);
  return bytes;
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ff-image-cache-'));
  now = 0;
  calls.size = 0;
  calls.read = 0;
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('concurrent downloads of an image read it once; later ones touch no file until the recheck', async () => {
  const bytes = await put('a', 800);
  const c = cache();
  const first = await Promise.all(Array.from({ length: 50 }, () => c.lookup('a')));
  expect(first.every((l) => l?.size === 800 && l.bytes?.equals(bytes))).toBe(true);
  expect(calls).toEqual({ size: 1, read: 1 });

  now = 4999;
  expect((await c.lookup('a'))?.bytes?.equals(bytes)).toBe(true);
  expect(calls).toEqual({ size: 1, read: 1 });

  // The recheck looks at the file's size again, without reading it.
  now = 5000;
  expect((await c.lookup('a'))?.bytes?.equals(bytes)).toBe(true);
  expect(calls).toEqual({ size: 2, read: 1 });
  expect(c.keptBytes()).toBe(800);
});

test('an image over the per-image limit is not kept: its size only, to be streamed', async () => {
  await put('big', 1001);
  const c = cache();
  expect(await c.lookup('big')).toEqual({ size: 1001, bytes: null });
  expect(await c.lookup('big')).toEqual({ size: 1001, bytes: null });
  expect(calls).toEqual({ size: 2, read: 0 });
  expect(c.keptBytes()).toBe(0);
});

test('a missing image is null and nothing is kept', async () => {
  const c = cache();
  expect(await c.lookup('nope')).toBeNull();
  expect(c.keptBytes()).toBe(0);
});

test('memory stays within the total: the least recently used image goes first', async () => {
  await put('a', 1000);
  await put('b', 1000);
  await put('c', 1000);
  const c = cache();
  await c.lookup('a');
  await c.lookup('b');
  await c.lookup('a'); // a is now more recent than b
  await c.lookup('c');
  expect(c.keptBytes()).toBe(2000);
  calls.read = 0;
  await c.lookup('a');
  await c.lookup('c');
  expect(calls.read).toBe(0);
  await c.lookup('b');
  expect(calls.read).toBe(1);
  expect(c.keptBytes()).toBeLessThanOrEqual(2500);
});

test('a file deleted by someone else is null at the recheck; evict() forgets at once', async () => {
  await put('a', 100);
  const c = cache();
  await c.lookup('a');
  await rm(path.join(dir, 'a'));
  now = 5000;
  expect(await c.lookup('a')).toBeNull();
  expect(c.keptBytes()).toBe(0);

  await put('b', 100);
  await c.lookup('b');
  c.evict('b');
  expect(c.keptBytes()).toBe(0);
  await rm(path.join(dir, 'b'));
  expect(await c.lookup('b')).toBeNull();
});

test('with no room (0 bytes) every download reads the file', async () => {
  await put('a', 10);
  const c = cache(0, 0);
  expect(await c.lookup('a')).toEqual({ size: 10, bytes: null });
  expect(c.keptBytes()).toBe(0);
});

test('an image that cannot be read whole is served by streaming, not an error', async () => {
  // A directory where the image should be: stat gives a size, reading it fails (EISDIR).
  await mkdir(path.join(dir, 'odd'));
  const c = cache(1024 * 1024, 4 * 1024 * 1024);
  const found = await c.lookup('odd');
  expect(found?.bytes).toBeNull();
  expect(found?.size).toBeGreaterThan(0);
  expect(calls.read).toBe(1);
  expect(c.keptBytes()).toBe(0);
});
