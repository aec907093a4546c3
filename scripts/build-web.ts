/**
 * Bundles the portal (web/src/main.ts, the shared protocol module and mqtt.js's browser build) into
 * web/dist/app.js with a source map. `npm run build:web` runs it; the portal's browser test calls
 * {@link buildWeb} too, so a fresh clone needs no separate build step before `npm test`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type BuildResult } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Options of {@link buildWeb}. */
export interface BuildWebOptions {
  /** Minify (default true): the bundle is ~400 KB unminified, mostly mqtt.js. */
  minify?: boolean;
  /** Output directory (default web/dist). */
  outdir?: string;
}

/** Builds web/dist/app.js (+ .map); rejects with esbuild's messages on a compile error. */
export async function buildWeb(options: BuildWebOptions = {}): Promise<BuildResult> {
  return build({
    absWorkingDir: ROOT,
    entryPoints: { app: 'web/src/main.ts' },
    outdir: options.outdir ?? path.join(ROOT, 'web/dist'),
    bundle: true,
    format: 'esm',
    // The "browser" condition picks mqtt.js's own browser build (dist/mqtt.esm.js), which brings the
    // Buffer and stream shims it needs; nothing of Node's is left to resolve.
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    minify: options.minify ?? true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
    metafile: true,
  });
}

// `tsx scripts/build-web.ts`: build and report the size.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildWeb({ minify: !process.argv.includes('--no-minify') }).then(
    (result) => {
      const outputs = Object.entries(result.metafile?.outputs ?? {}).filter(([file]) => file.endsWith('.js'));
      for (const [file, info] of outputs)
        console.log(
          `built ${path.relative(ROOT, path.resolve(ROOT, file))} (${Math.round(info.bytes / 1024)} KiB)`,
        );
    },
    (err: unknown) => {
      console.error('web build failed:', err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}
