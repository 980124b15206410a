/**
 * The S3 client and the retry rule shared by everything that touches storage (through ArtifactStore).
 */
import { S3Client } from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Settings } from '../config/infra.js';
import { BadInputError, IntegrityError, ServerUnreachableError } from '../errors.js';

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
