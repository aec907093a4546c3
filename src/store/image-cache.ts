/**
 * Small firmware images held in memory for downloads. A fleet update sends one image to thousands of
 * devices; reading it from disk for each costs a stat, an open, reads, a close and a stream pipeline,
 * more than sending the bytes. Images up to `maxImageBytes` are read once and kept, least recently
 * used first out, within `maxTotalBytes`; larger ones (a GX's Venus OS image) stay on disk and are
 * streamed as before, so memory stays bounded whatever is stored.
 *
 * Images are content-addressed, so kept bytes are never stale. An image deleted through this process
 * is dropped at once ({@link ImageCache.evict}); one deleted by another process sharing the directory
 * is noticed when its file is looked at again, at most `recheckMs` after the last look.
 */

/** Where an image's bytes come from. */
export interface ImageSource {
  /** Size of the stored file, or null when it is missing. */
  size(sha256: string): Promise<number | null>;
  /** The whole file. */
  read(sha256: string): Promise<Buffer>;
}

export interface ImageCacheOptions {
  /** Images larger than this are not kept (0: none is). */
  maxImageBytes: number;
  /** Bytes kept in all. */
  maxTotalBytes: number;
  /** How long a kept image is served before its file is looked at again. */
  recheckMs: number;
  now?: () => number;
}

/** An image to serve: its size, and its bytes when they are in memory (else stream the file). */
export interface ImageLookup {
  size: number;
  bytes: Buffer | null;
}

interface Entry {
  bytes: Buffer;
  checkedAt: number;
}

export class ImageCache {
  /** Kept images in least-recently-used order (a hit moves its entry to the end). */
  private readonly entries = new Map<string, Entry>();
  private total = 0;
  /** Looks in progress, shared by the concurrent downloads that wait for them. */
  private readonly pending = new Map<string, Promise<ImageLookup | null>>();
  private readonly now: () => number;

  constructor(
    private readonly source: ImageSource,
    private readonly options: ImageCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The image's size and, when small enough, its bytes; null when it is not stored. */
  lookup(sha256: string): Promise<ImageLookup | null> {
    const entry = this.entries.get(sha256);
    if (entry && this.now() - entry.checkedAt < this.options.recheckMs) {
      this.entries.delete(sha256);
      this.entries.set(sha256, entry);
      return Promise.resolve({ size: entry.bytes.length, bytes: entry.bytes });
    }
    let p = this.pending.get(sha256);
    if (!p) {
      p = this.load(sha256, entry).finally(() => this.pending.delete(sha256));
      this.pending.set(sha256, p);
    }
    return p;
  }

  /** Forgets an image (its file was deleted). */
  evict(sha256: string): void {
    const entry = this.entries.get(sha256);
    if (!entry) return;
    this.entries.delete(sha256);
    this.total -= entry.bytes.length;
  }

  /** Bytes kept now. */
  keptBytes(): number {
    return this.total;
  }

  private async load(sha256: string, kept: Entry | undefined): Promise<ImageLookup | null> {
    const size = await this.source.size(sha256);
    if (size === null) {
      this.evict(sha256);
      return null;
    }
    if (kept && kept.bytes.length === size) {
      kept.checkedAt = this.now();
      return { size, bytes: kept.bytes };
    }
    this.evict(sha256);
    if (size > this.options.maxImageBytes || size > this.options.maxTotalBytes) return { size, bytes: null };
    let bytes: Buffer;
    try {
      bytes = await this.source.read(sha256);
    } catch {
      // Not readable whole (gone meanwhile, too many open files…): the download streams it or reports why.
      return { size, bytes: null };
    }
    // Replaced between the stat and the read (cannot happen to content-addressed files, but then stream it).
    if (bytes.length !== size) return { size, bytes: null };
    this.entries.set(sha256, { bytes, checkedAt: this.now() });
    this.total += size;
    for (const [key, e] of this.entries) {
      if (this.total <= this.options.maxTotalBytes) break;
      this.entries.delete(key);
      this.total -= e.bytes.length;
    }
    return { size, bytes };
  }
}
