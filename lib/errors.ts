/**
 * Error kinds shared by lib/, the CLI and the activities. lib/ never imports Temporal: activities map
 * BadInputError to a non-retryable failure, everything else is retried by the stage's retry policy.
 */

/** Something the user supplied is wrong (config, dataset file, checkpoint, URL, CLI argument). Not retryable. */
export class BadInputError extends Error {
  override name = 'BadInputError';
}

/** A server (Temporal, S3) did not answer at the given address. */
export class ServerUnreachableError extends Error {
  override name = 'ServerUnreachableError';
}

/** Stored data does not match what its manifest promises (checksum, size). Not retryable. */
export class IntegrityError extends Error {
  override name = 'IntegrityError';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** "outer: inner: innermost" — a failed run's error wraps the stage's real reason in its causes. */
export function causeChain(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && parts.length < 8; e = (e as Error).cause) {
    const m = errorMessage(e);
    if (!parts.includes(m)) parts.push(m);
    if (!(e instanceof Error)) break;
  }
  return parts.join(': ');
}
