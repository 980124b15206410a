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
