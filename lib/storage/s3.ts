/**
 * The S3 client and the retry rule shared by everything that touches storage (through ArtifactStore).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Settings } from '../config/infra.js';
import { BadInputError, errorMessage, IntegrityError, ServerUnreachableError } from '../errors.js';

export function createS3Client(s: S3Settings): S3Client {
  // The SDK version is pinned and supports Node 20 (the project's runtime); its notice about future
  // releases needing Node 22 would otherwise be printed by every command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    region: s.region,
    forcePathStyle: s.forcePathStyle,
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    ...(s.credentials ? { credentials: s.credentials } : {}),
    // Recent SDKs add CRC32 checksums to every request by default; S3-compatible servers (SeaweedFS, older
    // MinIO) reject or mangle them. Only send them where the operation requires one. AWS keeps its defaults.
    ...(s.endpoint
      ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' }
      : {}),
    maxAttempts: 4,
    retryMode: 'standard',
    // Without these a request to a server that stops answering waits forever; the stage activity keeps
    // heartbeating meanwhile, so nothing else would notice. A timed-out request is retried like a reset one.
    requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
  });
}

interface AwsLikeError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

export function httpStatus(err: unknown): number | undefined {
  return (err as AwsLikeError).$metadata?.httpStatusCode;
}

/** Errors worth another try: network faults, throttling, 5xx. Never bad input or corrupted data. */
export function isTransient(err: unknown): boolean {
  if (err instanceof BadInputError || err instanceof IntegrityError) return false;
  const e = err as AwsLikeError;
  const status = httpStatus(err);
  if (status !== undefined) return status >= 500 || status === 429 || status === 408;
  const code = e.code ?? e.name ?? '';
  return /ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|TimeoutError|RequestTimeout|AbortError|Premature/i.test(
    code,
  );
}

/** Runs op with bounded retries and exponential backoff (the SDK retries single requests; this covers
 * whole transfers whose body stream broke midway). */
export async function withRetries<T>(op: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) throw err;
      await sleep(Math.min(200 * 2 ** (attempt - 1), 5000) * (0.5 + Math.random()));
    }
  }
}

/** True when an error (or one of its causes) says a server did not answer or was unwell: an outage of a
 * dependency, not a failure of the work itself. */
export function isUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; e = (e as Error).cause, depth++) {
    if (e instanceof ServerUnreachableError || isTransient(e)) return true;
    if (!(e instanceof Error)) break;
  }
  return false;
}

export interface OutageWait {
  /** How long one outage may last before the operation fails after all. */
  budgetMs: number;
  /** A cheap request that succeeds once the dependency answers again (e.g. a HEAD of the bucket). */
  probe: () => Promise<void>;
  /** Called when a wait begins (with its start) and when it ends (with undefined). */
  onWait: (since: Date | undefined) => void;
  signal?: AbortSignal;
  /** After an outage ends, failures within this window are taken as the server settling, not as the work's. */
  settleMs?: number;
}

/**
 * Runs an idempotent operation, and when it fails because a dependency is down, waits for the dependency
 * (probing with capped exponential backoff, up to budgetMs per outage) and runs it again, instead of failing.
 * A failure while the probe answers at once is the operation's own and is thrown, as is anything that is
 * not an outage (bad input, corrupted data, a bug) and anything after the signal aborted.
 */
export async function outlastOutages<T>(op: () => Promise<T>, w: OutageWait): Promise<T> {
  let lastOutageEnd = -Infinity;
  for (;;) {
    try {
      return await op();
    } catch (err) {
      if (w.signal?.aborted || !isUnavailable(err)) throw err;
      const started = Date.now();
      const settling = started - lastOutageEnd < (w.settleMs ?? 60_000);
      if (!settling && (await probeAnswers(w.probe))) throw err;
      w.onWait(new Date(started));
      let down = !settling;
      for (let delay = 1000; ; delay = Math.min(2 * delay, 10_000)) {
        if (Date.now() - started > w.budgetMs) {
          throw new ServerUnreachableError(
            `gave up after waiting ${Math.round((Date.now() - started) / 60_000)} minutes for the dependency ` +
              `to answer: ${errorMessage(err)}`,
            { cause: err },
          );
        }
        await sleep(delay * (0.75 + Math.random() / 2), undefined, { signal: w.signal });
        if (await probeAnswers(w.probe)) break;
        down = true;
      }
      // Only a real outage opens a settling window, so a failure that persists after one still ends.
      if (down) lastOutageEnd = Date.now();
      w.onWait(undefined);
    }
  }
}

async function probeAnswers(probe: () => Promise<void>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (err) {
    if (isUnavailable(err)) return false;
    throw err;
  }
}

/** Maps a failure to a message naming the endpoint (and saying it did not answer, for network faults). */
export function describeS3Failure(err: unknown, endpoint: string | undefined): Error {
  if (httpStatus(err) !== undefined) return err instanceof Error ? err : new Error(String(err));
  const e = err as AwsLikeError & { message?: string };
  const where = `S3 endpoint ${endpoint ?? '(AWS default)'}`;
  const detail = `${e.code ?? e.name ?? 'Error'}: ${e.message ?? String(err)}`;
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|EAI_AGAIN|ECONNRESET/.test(detail)) {
    return new ServerUnreachableError(`${where} did not answer (${detail})`);
  }
  return new Error(`${where}: ${detail}`, { cause: err });
}
