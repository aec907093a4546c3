/** `--name N` from the command line of a small bench script: a positive integer, or `fallback` when absent. */
export function positiveIntFlag(
  name: string,
  fallback: number,
  argv: readonly string[] = process.argv,
): number {
  const i = argv.indexOf(`--${name}`);
  const value = i === -1 ? fallback : Number(argv[i + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer`);
  return value;
}
