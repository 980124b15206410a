/**
 * Fetching a dataset: every file listed in a dataset manifest (configs/datasets/*.yaml) is downloaded from an
 * https://, s3:// or file:// URL, resumed with a byte range after an interruption, verified (size, sha256,
 * format magic) and stored in the artifact store. A file the manifest gives no sha256 for is verified against
 * the manifest's lock file (lib/data/lock.ts), or, when asked to record checksums, recorded there. The verified set becomes one artifact whose key derives from
 * the files' hashes, so a second fetch of the same manifest is a no-op, and a file whose blob is already stored
 * is not downloaded again.
 *
 * Errors: a 404/403, a checksum mismatch, a truncated file or a wrong format is bad input (not retryable) and
 * names the file; network faults and 5xx/429 are retried, resuming where the bytes stopped.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { BadInputError, IntegrityError, errorMessage } from '../errors.js';
import {
  checkKey,
  type ArtifactRef,
  type ArtifactStore,
  type FileSource,
} from '../storage/artifact-store.js';
import { isTransient } from '../storage/s3.js';
import { lockFileOf, readLock, type ChecksumLock } from './lock.js';

const fileEntry = z.strictObject({
  /** Path of the file inside the dataset folder the loaders read (e.g. `sbj_1.npz`). */
  name: z.string().min(1),
  /** Absolute URL; when absent the file is looked up under the manifest's or the caller's base URL. */
  url: z.string().optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits')
    .nullable(),
  size: z.number().int().positive().nullable().optional(),
});

export const datasetManifestSchema = z.strictObject({
  dataset: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
  description: z.string().optional(),
  /** A folder URL (ending in '/') that file names are resolved against. */
  baseUrl: z.string().optional(),
  files: z.array(fileEntry).min(1),
});

export type DatasetManifest = z.infer<typeof datasetManifestSchema>;
export type DatasetFileEntry = z.infer<typeof fileEntry>;

export function loadDatasetManifest(file: string, text?: string): DatasetManifest {
  let raw: unknown;
  try {
    raw = parseYaml(text ?? requireText(file));
  } catch (err) {
    if (err instanceof BadInputError) throw err;
    throw new BadInputError(`${file}: not valid YAML: ${errorMessage(err).split('\n')[0]}`);
  }
  const parsed = datasetManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new BadInputError(`${file}: invalid dataset manifest: ${issues.join('; ')}`);
  }
  for (const f of parsed.data.files) checkKey(f.name, `file name in ${file}`);
  return parsed.data;
}

function requireText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BadInputError(`${file}: cannot read dataset manifest (${(err as NodeJS.ErrnoException).code})`);
  }
}

/**
 * A manifest read from disk with the checksums its lock file records filled in, and its text as the pipeline's
 * fetch stage reads it (the file's own text when nothing was filled in). `unchecked`: the files the manifest
 * itself gives no sha256 for, whose checksums belong in the lock.
 */
export function readDatasetManifest(file: string): {
  manifest: DatasetManifest;
  text: string;
  lockFile: string;
  lock: ChecksumLock;
  unchecked: string[];
} {
  const text = requireText(file);
  const own = loadDatasetManifest(file, text);
  const lockFile = lockFileOf(file);
  const lock = readLock(lockFile);
  const unchecked = own.files.filter((f) => !f.sha256).map((f) => f.name);
  const files = own.files.map((f) => {
    const locked = f.sha256 ? undefined : lock[f.name];
    return locked ? { ...f, sha256: locked.sha256, size: locked.size } : f;
  });
  const filled = files.some((f, i) => f !== own.files[i]);
  const manifest = filled ? { ...own, files } : own;
  return { manifest, text: filled ? stringifyYaml(manifest) : text, lockFile, lock, unchecked };
}

export interface RemoteFile {
  name: string;
  url: string;
  /** The expected sha256, or the leading hex digits a publisher gives (checked as a prefix); null: not known,
   * taken from the download (a caller that records checksums). */
  sha256: string | null;
  size?: number;
}

/** A downloaded file's full sha256 and size. */
export interface VerifiedFile {
  name: string;
  sha256: string;
  size: number;
}

/**
 * Resolves every entry to a URL and checks that the checksums a verified download needs are there (unless
 * `recordChecksums`: then a file without one is downloaded and its checksum returned for the lock file).
 */
export function resolveFiles(
  manifest: DatasetManifest,
  source: string,
  baseUrl?: string,
  recordChecksums = false,
): RemoteFile[] {
  return manifest.files.map((f, i) => {
    const base = baseUrl ?? manifest.baseUrl;
    const url = f.url ?? (base ? new URL(f.name, base.endsWith('/') ? base : `${base}/`).href : undefined);
    if (!url) {
      throw new BadInputError(
        `${source}: files.${i} (${f.name}) has no url: supply one in the manifest, or a base URL ` +
          `(manifest baseUrl or --base-url) of a folder that holds it`,
      );
    }
    if (!f.sha256 && !recordChecksums) {
      throw new BadInputError(
        `${source}: files.${i} (${f.name}) has no sha256 in the manifest or in ${lockFileOf(source)}, so a ` +
          `download could not be verified: fetch once with --record-checksums from a source you trust ` +
          `(it writes the lock file; commit it), or fill the sha256 in from a trusted copy (sha256sum)`,
      );
    }
    return { name: f.name, url, sha256: f.sha256 ?? null, ...(f.size ? { size: f.size } : {}) };
  });
}

export type FetchProgress = (p: {
  file: string;
  bytes: number;
  total?: number;
  fileIndex: number;
  files: number;
}) => void;

export interface FetchOptions {
  /** Where partial downloads live between attempts (resumed from there). */
  cacheDir: string;
  baseUrl?: string;
  /** Client for s3:// sources (the source bucket's credentials, not necessarily the artifact store's). */
  sourceS3?: S3Client;
  onProgress?: FetchProgress;
  maxAttempts?: number;
  /** Download files that have no checksum and return theirs (FetchResult.files) for the lock file. */
  recordChecksums?: boolean;
}

export interface FetchResult {
  ref: ArtifactRef;
  cached: boolean;
  downloaded: string[];
  reused: string[];
  /** Every file's full sha256 and size, as stored. */
  files: VerifiedFile[];
}

/** The artifact key of a manifest's verified file set: same files and hashes → same key. */
export function datasetArtifactKey(dataset: string, files: { name: string; sha256: string }[]): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(files.map((f) => [f.name, f.sha256]).sort()))
    .digest('hex');
  return `datasets/${dataset}/raw-${digest.slice(0, 16)}`;
}

export async function fetchDataset(
  manifest: DatasetManifest,
  source: string,
  store: ArtifactStore,
  opts: FetchOptions,
): Promise<FetchResult> {
  const files = resolveFiles(manifest, source, opts.baseUrl, opts.recordChecksums);
  // Only a file set whose every hash is known has a key before downloading.
  const known = files.flatMap((f) => (f.sha256 === null ? [] : [{ name: f.name, sha256: f.sha256 }]));
  const key = known.length === files.length ? datasetArtifactKey(manifest.dataset, known) : undefined;
  const existing = key === undefined ? undefined : await store.manifest(key);
  if (key !== undefined && existing) {
    const ref = await store.put(
      key,
      existing.files.map((f) => ({ path: f.path, blob: f })),
    );
    const stored = existing.files.map((f) => ({ name: f.path, sha256: f.sha256, size: f.size }));
    return { ref, cached: true, downloaded: [], reused: files.map((f) => f.name), files: stored };
  }
  const sources: FileSource[] = [];
  const verified: VerifiedFile[] = [];
  const downloaded: string[] = [];
  const reused: string[] = [];
  for (const [i, f] of files.entries()) {
    if (f.sha256 !== null && f.size !== undefined && (await store.hasBlob(f.sha256, f.size))) {
      sources.push({ path: f.name, blob: { sha256: f.sha256, size: f.size } });
      verified.push({ name: f.name, sha256: f.sha256, size: f.size });
      reused.push(f.name);
      continue;
    }
    const dest = join(opts.cacheDir, manifest.dataset, f.name);
    verified.push(
      await downloadFile(f, dest, {
        sourceS3: opts.sourceS3,
        maxAttempts: opts.maxAttempts,
        onProgress: (bytes, total) =>
          opts.onProgress?.({ file: f.name, bytes, total, fileIndex: i, files: files.length }),
      }),
    );
    sources.push({ path: f.name, blob: await store.putBlobFile(dest) });
    downloaded.push(f.name);
    await rm(dest, { force: true });
  }
  const ref = await store.put(datasetArtifactKey(manifest.dataset, verified), sources, {
    stage: 'fetch',
    dataset: manifest.dataset,
    manifest: source,
    urls: Object.fromEntries(files.map((f) => [f.name, f.url])),
  });
  return { ref, cached: false, downloaded, reused, files: verified };
}

interface DownloadOptions {
  sourceS3?: S3Client;
  onProgress?: (bytes: number, total?: number) => void;
  maxAttempts?: number;
}

/** Downloads one file to dest through `dest.partial`, resuming across attempts, then verifies it. */
export async function downloadFile(
  file: RemoteFile,
  dest: string,
  opts: DownloadOptions = {},
): Promise<VerifiedFile> {
  const partial = `${dest}.partial`;
  await mkdir(dirname(dest), { recursive: true });
  const attempts = opts.maxAttempts ?? 6;
  let digest: string;
  for (let attempt = 1; ; attempt++) {
    const hash = createHash('sha256');
    const offset = await hashExisting(partial, hash);
    try {
      if ((await transfer(file, partial, offset, hash, opts)) === 'restart') {
        await rm(partial, { force: true });
        continue;
      }
      digest = hash.digest('hex');
      break;
    } catch (err) {
      if (attempt >= attempts || !isTransient(err)) {
        if (!isTransient(err)) await rm(partial, { force: true });
        throw err instanceof BadInputError || err instanceof IntegrityError
          ? err
          : new Error(
              `${file.name}: download from ${file.url} failed after ${attempt} attempts: ${errorMessage(err)}`,
              {
                cause: err,
              },
            );
      }
      await sleep(Math.min(250 * 2 ** (attempt - 1), 8000));
    }
  }
  let size: number;
  try {
    size = await verify(file, partial, digest);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  await rename(partial, dest);
  return { name: file.name, sha256: digest, size };
}

async function hashExisting(partial: string, hash: Hash): Promise<number> {
  let size = 0;
  try {
    for await (const chunk of createReadStream(partial)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return size;
}

/** Opens the source at `offset`; 'restart' when the source cannot resume and the partial must be dropped. */
async function transfer(
  file: RemoteFile,
  partial: string,
  offset: number,
  hash: Hash,
  opts: DownloadOptions,
): Promise<'done' | 'restart'> {
  if (file.size !== undefined && offset === file.size) return 'done';
  const opened = await openSource(file, offset, opts.sourceS3);
  if (opened === 'restart') return 'restart';
  const out = createWriteStream(partial, { flags: 'a' });
  let bytes = offset;
  const total = opened.total ?? file.size;
  try {
    for await (const chunk of opened.body) {
      const buf = chunk as Buffer;
      hash.update(buf);
      bytes += buf.length;
      if (!out.write(buf)) await once(out, 'drain');
      opts.onProgress?.(bytes, total);
    }
  } finally {
    await new Promise<void>((resolve, reject) =>
      out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }
  return 'done';
}

interface OpenedSource {
  body: AsyncIterable<Uint8Array>;
  total?: number;
}

async function openSource(
  file: RemoteFile,
  offset: number,
  s3?: S3Client,
): Promise<OpenedSource | 'restart'> {
  const url = new URL(file.url);
  switch (url.protocol) {
    case 'http:':
    case 'https:':
      return openHttp(file, offset);
    case 's3:': {
      if (!s3)
        throw new BadInputError(`${file.name}: ${file.url} is an s3:// URL but no S3 client was given`);
      try {
        const res = await s3.send(
          new GetObjectCommand({
            Bucket: url.hostname,
            Key: decodeURIComponent(url.pathname.slice(1)),
            ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}),
          }),
        );
        return { body: res.Body as Readable, total: offset + (res.ContentLength ?? 0) };
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404 || status === 403)
          throw new BadInputError(`${file.name}: ${file.url} answered ${status}`);
        if (status === 416) return 'restart';
        throw err;
      }
    }
    case 'file:': {
      const path = fileURLToPath(url);
      try {
        await stat(path);
      } catch {
        throw new BadInputError(`${file.name}: ${file.url} does not exist`);
      }
      return { body: createReadStream(path, { start: offset }) };
    }
    default:
      throw new BadInputError(
        `${file.name}: unsupported URL scheme in ${file.url} (use https://, s3:// or file://)`,
      );
  }
}

async function openHttp(file: RemoteFile, offset: number): Promise<OpenedSource | 'restart'> {
  let res: Response;
  try {
    res = await fetch(file.url, {
      headers: offset > 0 ? { Range: `bytes=${offset}-` } : {},
      redirect: 'follow',
    });
  } catch (err) {
    throw Object.assign(new Error(`${file.name}: ${file.url} did not answer: ${errorMessage(err)}`), {
      code: 'ECONNREFUSED',
    });
  }
  if (res.status === 416) return 'restart';
  if (res.status >= 400) {
    await res.body?.cancel();
    const e = new Error(`${file.name}: ${file.url} answered HTTP ${res.status}`);
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      throw Object.assign(e, { $metadata: { httpStatusCode: res.status } });
    }
    throw new BadInputError(e.message);
  }
  if (offset > 0 && res.status !== 206) {
    // The server ignored the range: start over rather than append a second copy.
    await res.body?.cancel();
    return 'restart';
  }
  const length = Number(res.headers.get('content-length') ?? NaN);
  const body = res.body
    ? Readable.fromWeb(res.body as import('node:stream/web').ReadableStream)
    : Readable.from([]);
  return { body: markTransient(body), ...(Number.isFinite(length) ? { total: offset + length } : {}) };
}

/** Undici reports a dropped body as a TypeError('terminated'); mark it as a network fault to resume from. */
async function* markTransient(body: Readable): AsyncIterable<Uint8Array> {
  try {
    yield* body;
  } catch (err) {
    throw Object.assign(new Error(errorMessage(err)), { code: 'ECONNRESET', cause: err });
  }
}

const MAGIC: [RegExp, Uint8Array, string][] = [
  [/\.npy$/i, new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]), 'an .npy file (\\x93NUMPY)'],
  [/\.(npz|zip)$/i, new Uint8Array([0x50, 0x4b]), 'a zip archive (PK)'],
  [/\.png$/i, new Uint8Array([0x89, 0x50, 0x4e, 0x47]), 'a PNG image'],
  [/\.jpe?g$/i, new Uint8Array([0xff, 0xd8, 0xff]), 'a JPEG image'],
];

/** Checks size, checksum (a short one as a prefix) and format; returns the size. */
async function verify(file: RemoteFile, path: string, sha256: string): Promise<number> {
  const { size } = await stat(path);
  if (file.size !== undefined && size !== file.size) {
    throw new IntegrityError(
      `${file.name}: ${size < file.size ? 'truncated' : 'too long'}: got ${size} bytes, expected ${file.size} (from ${file.url})`,
    );
  }
  if (file.sha256 !== null && !sha256.startsWith(file.sha256)) {
    const expected = file.sha256.length < 64 ? `a sha256 starting ${file.sha256}` : file.sha256;
    throw new IntegrityError(
      `${file.name}: sha256 mismatch: expected ${expected}, got ${sha256} (from ${file.url})`,
    );
  }
  const fh = await open(path, 'r');
  const head = Buffer.alloc(8);
  try {
    await fh.read(head, 0, 8, 0);
  } finally {
    await fh.close();
  }
  for (const [pattern, magic, what] of MAGIC) {
    if (pattern.test(file.name) && !magic.every((b, i) => head[i] === b)) {
      throw new BadInputError(`${file.name}: wrong format: not ${what} (from ${file.url})`);
    }
  }
  if (/\.json$/i.test(file.name)) {
    try {
      JSON.parse(await readFile(path, 'utf8'));
    } catch {
      throw new BadInputError(`${file.name}: wrong format: not valid JSON (from ${file.url})`);
    }
  }
  return size;
}
