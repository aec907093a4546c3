/**
 * What a MULTI or a pipeline answered, command by command. ioredis resolves `exec()` with an
 * `[error, value]` pair per command (an error of one command does not reject the others), or null
 * when nothing ran (a transaction discarded); every caller wants the values, or the first error.
 */

/** The replies' values in order, or null when nothing ran; throws the first command's error. */
export function replyValues(res: [Error | null, unknown][] | null): unknown[] | null {
  if (!res) return null;
  return res.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
