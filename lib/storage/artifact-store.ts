/**
 * The artifact store: the only way any code touches storage.
 *
 * Layout under the bucket (and LEA_S3_PREFIX):
 *   blobs/sha256/<aa>/<sha256>        content-addressed file bodies, shared between artifacts
 *   artifacts/<key>/manifest.json     one JSON manifest per artifact, written LAST
 * An artifact without its manifest does not exist: a crash mid-upload leaves at most unreferenced blobs or an
 * incomplete multipart upload, never a half artifact that looks whole. Every read verifies sha256 and size.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { S3Settings } from '../config/infra.js';
import { BadInputError, IntegrityError } from '../errors.js';
import { createS3Client, describeS3Failure, httpStatus, withRetries } from './s3.js';

// ':' is allowed: scheduled runs' ids end in an ISO timestamp.
const SEGMENT = /^[A-Za-z0-9_=+@,:-][A-Za-z0-9._=+@,:-]*$/;

/** Validates an artifact key or a file path inside an artifact: relative, '/'-separated, no '.' or '..'. */
export function checkKey(key: string, what = 'artifact key'): string {
  const segments = key.split('/');
  const bad =
    key.length === 0 || key.length > 512 || segments.some((s) => s === '.' || s === '..' || !SEGMENT.test(s));
  if (bad) {
    throw new BadInputError(
      `invalid ${what} ${JSON.stringify(key)}: use '/'-separated segments of letters, digits and ._=+@,:- ` +
        `(no empty, '.' or '..' segments, no leading '/', at most 512 characters)`,
    );
  }
  return key;
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const fileEntrySchema = z.strictObject({
  path: z.string(),
  sha256: sha256Hex,
  size: z.number().int().min(0),
});
const manifestSchema = z.strictObject({
  format: z.literal('lea-artifact/1'),
  key: z.string(),
  createdAt: z.string(),
  files: z.array(fileEntrySchema),
  meta: z.record(z.string(), z.unknown()),
});

export type ArtifactFile = z.infer<typeof fileEntrySchema>;
export type ArtifactManifest = z.infer<typeof manifestSchema>;
/** What travels through Temporal: a reference, never the data. */
export interface ArtifactRef {
  key: string;
  manifestSha256: string;
}
/** A file of an artifact: from a local file, from bytes, or a blob the store already holds (by sha256). */
export type FileSource =
  | { path: string; fromFile: string }
  | { path: string; bytes: Uint8Array }
  | { path: string; blob: { sha256: string; size: number } };
export type ProgressFn = (done: number, total: number) => void;
export interface BlobInfo {
  sha256: string;
  size: number;
  uploaded: boolean;
}

export class ArtifactStore {
  readonly bucket: string;
  private readonly prefix: string;

  constructor(
    readonly s3: S3Client,
    private readonly settings: Pick<S3Settings, 'bucket' | 'prefix' | 'endpoint'>,
    private readonly partSize = 16 * 1024 * 1024,
  ) {
    this.bucket = settings.bucket;
    this.prefix = settings.prefix;
  }

  static fromSettings(s: S3Settings): ArtifactStore {
    return new ArtifactStore(createS3Client(s), s);
  }

  blobKey(sha256: string): string {
    return `${this.prefix}blobs/sha256/${sha256.slice(0, 2)}/${sha256}`;
  }

  manifestKey(key: string): string {
    return `${this.prefix}artifacts/${checkKey(key)}/manifest.json`;
  }

  /** Succeeds when the endpoint answers and the bucket exists; the error names the address otherwise. */
  async checkBucket(): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      if (httpStatus(err) === 404) {
        throw new BadInputError(
          `bucket '${this.bucket}' does not exist at ${this.settings.endpoint ?? 'AWS S3'}`,
        );
      }
      throw describeS3Failure(err, this.settings.endpoint);
    }
  }

  // ---- blobs -------------------------------------------------------------------------------------

  /** Uploads a file as a content-addressed blob (multipart, streamed); skips it if already stored. */
  async putBlobFile(file: string, onProgress?: ProgressFn): Promise<BlobInfo> {
    const { sha256, size } = await hashFile(file);
    if (await this.hasBlob(sha256, size)) return { sha256, size, uploaded: false };
    await withRetries(() => this.uploadVerified(() => createReadStream(file), sha256, size, onProgress));
    return { sha256, size, uploaded: true };
  }

  async putBlobBytes(bytes: Uint8Array): Promise<BlobInfo> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const size = bytes.byteLength;
    if (await this.hasBlob(sha256, size)) return { sha256, size, uploaded: false };
    await withRetries(() => this.uploadVerified(() => Readable.from([Buffer.from(bytes)]), sha256, size));
    return { sha256, size, uploaded: true };
  }

  async hasBlob(sha256: string, size: number): Promise<boolean> {
    try {
      const head = await this.s3.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(sha256) }),
      );
      return head.ContentLength === size;
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw describeS3Failure(err, this.settings.endpoint);
    }
  }

  /** Streams the body up while hashing it again, so a file that changed since it was hashed is refused. */
  private async uploadVerified(
    open: () => Readable,
    sha256: string,
    size: number,
    onProgress?: ProgressFn,
  ): Promise<void> {
    const tap = new HashTap();
    const body = open().pipe(tap).pipe(new PassThrough());
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: this.bucket, Key: this.blobKey(sha256), Body: body, ContentLength: size },
      partSize: this.partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    if (onProgress) upload.on('httpUploadProgress', (p) => onProgress(p.loaded ?? 0, size));
    try {
      await upload.done();
    } catch (err) {
      throw describeS3Failure(err, this.settings.endpoint);
    }
    const got = tap.digest();
    if (got !== sha256 || tap.bytes !== size) {
      throw new IntegrityError(
        `source changed during upload of blob ${sha256}: read ${got} (${tap.bytes} bytes)`,
      );
    }
  }

  /** Opens a blob as a stream that errors at its end if the bytes do not match sha256 and size. */
  private async openBlob(entry: ArtifactFile, context: string): Promise<Readable> {
    let res;
    try {
      res = await this.s3.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(entry.sha256) }),
      );
    } catch (err) {
      if (httpStatus(err) === 404) {
        throw new IntegrityError(`${context}: blob ${this.blobKey(entry.sha256)} is missing from the store`);
      }
      throw describeS3Failure(err, this.settings.endpoint);
    }
    return (res.Body as Readable).pipe(
      new VerifyTap(entry, `${context} (blob ${this.blobKey(entry.sha256)})`),
    );
  }

  // ---- artifacts ---------------------------------------------------------------------------------

  /**
   * Stores an artifact: uploads each file as a blob, then writes the manifest last. Writing the same files
   * to an existing key returns the stored reference (idempotent); different files need { overwrite: true }.
   */
  async put(
    key: string,
    files: FileSource[],
    meta: Record<string, unknown> = {},
    opts: { overwrite?: boolean; onProgress?: ProgressFn } = {},
  ): Promise<ArtifactRef> {
    checkKey(key);
    const seen = new Set<string>();
    for (const f of files) {
      checkKey(f.path, `file path in artifact '${key}'`);
      if (seen.has(f.path)) throw new BadInputError(`artifact '${key}' lists file '${f.path}' twice`);
      seen.add(f.path);
    }
    const entries: ArtifactFile[] = [];
    for (const f of files) {
      const blob = await this.storeSource(f, opts.onProgress);
      entries.push({ path: f.path, sha256: blob.sha256, size: blob.size });
    }
    const existing = await this.manifestWithSha(key);
    if (existing && !opts.overwrite) {
      if (sameFiles(existing.manifest.files, entries)) return { key, manifestSha256: existing.sha256 };
      throw new IntegrityError(
        `artifact '${key}' already exists with different files (pass overwrite to replace)`,
      );
    }
    const manifest: ArtifactManifest = {
      format: 'lea-artifact/1',
      key,
      createdAt: new Date().toISOString(),
      files: entries,
      meta,
    };
    const body = Buffer.from(JSON.stringify(manifest, null, 2));
    await withRetries(() =>
      this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.manifestKey(key),
          Body: body,
          ContentType: 'application/json',
        }),
      ),
    );
    return { key, manifestSha256: createHash('sha256').update(body).digest('hex') };
  }

  private async storeSource(
    f: FileSource,
    onProgress?: ProgressFn,
  ): Promise<{ sha256: string; size: number }> {
    if ('fromFile' in f) return this.putBlobFile(f.fromFile, onProgress);
    if ('bytes' in f) return this.putBlobBytes(f.bytes);
    if (!(await this.hasBlob(f.blob.sha256, f.blob.size))) {
      throw new IntegrityError(
        `file '${f.path}': blob ${f.blob.sha256} (${f.blob.size} bytes) is not in the store`,
      );
    }
    return f.blob;
  }

  /** The manifest, or undefined when the artifact does not exist. A reference's manifest hash is checked. */
  async manifest(target: string | ArtifactRef): Promise<ArtifactManifest | undefined> {
    const key = typeof target === 'string' ? target : target.key;
    const found = await this.manifestWithSha(key);
    if (found && typeof target !== 'string' && found.sha256 !== target.manifestSha256) {
      throw new IntegrityError(
        `artifact '${key}': manifest sha256 ${found.sha256} does not match the reference's ${target.manifestSha256}`,
      );
    }
    return found?.manifest;
  }

  /** The reference of an existing artifact, or undefined. */
  async ref(key: string): Promise<ArtifactRef | undefined> {
    const found = await this.manifestWithSha(key);
    return found && { key, manifestSha256: found.sha256 };
  }

  async exists(key: string): Promise<boolean> {
    return (await this.manifestWithSha(key)) !== undefined;
  }

  /** The manifest of an artifact that must exist. */
  async require(target: string | ArtifactRef): Promise<ArtifactManifest> {
    const m = await this.manifest(target);
    if (!m)
      throw new BadInputError(
        `artifact '${typeof target === 'string' ? target : target.key}' does not exist`,
      );
    return m;
  }

  async readBytes(target: string | ArtifactRef, path: string): Promise<Buffer> {
    const { entry, context } = await this.entry(target, path);
    return withRetries(async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of await this.openBlob(entry, context)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    });
  }

  /** Streams one file to dest through a temporary file, renamed only once its sha256 is verified. */
  async downloadFile(target: string | ArtifactRef, path: string, dest: string): Promise<void> {
    const { entry, context } = await this.entry(target, path);
    await mkdir(dirname(dest), { recursive: true });
    const partial = `${dest}.partial-${randomBytes(4).toString('hex')}`;
    try {
      await withRetries(async () => {
        const blob = await this.openBlob(entry, context);
        // Opened before the copy starts: a write stream opening lazily could create the file after a failed
        // copy's clean-up below had already run.
        const file = await open(partial, 'w').catch((err: unknown) => {
          blob.destroy();
          throw err;
        });
        await pipeline(blob, file.createWriteStream());
      });
      await rename(partial, dest);
    } finally {
      await rm(partial, { force: true });
    }
  }

  /** Downloads every file of an artifact under destDir; returns the manifest. */
  async download(target: string | ArtifactRef, destDir: string): Promise<ArtifactManifest> {
    const m = await this.require(target);
    for (const f of m.files) await this.downloadFile(target, f.path, join(destDir, f.path));
    return m;
  }

  /** Keys of the artifacts (those with a manifest) under a key prefix. */
  async list(keyPrefix = ''): Promise<string[]> {
    const root = `${this.prefix}artifacts/`;
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: root + keyPrefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key?.endsWith('/manifest.json')) keys.push(o.Key.slice(root.length, -'/manifest.json'.length));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  /**
   * Deletes artifacts: their manifests, then the blobs that only they referenced (a blob any other manifest
   * lists stays). With dryRun, only counts. For retention (lea gc): never pass an artifact a run may still read.
   */
  async deleteArtifacts(
    keys: string[],
    opts: { dryRun?: boolean } = {},
  ): Promise<{ artifacts: number; blobs: number; bytes: number }> {
    const doomed = new Set(keys);
    const blobs = new Map<string, number>();
    for (const key of keys)
      for (const f of (await this.manifest(key))?.files ?? []) blobs.set(f.sha256, f.size);
    const others = (await this.list()).filter((k) => !doomed.has(k));
    for (let i = 0; i < others.length && blobs.size > 0; i += 16) {
      const manifests = await Promise.all(others.slice(i, i + 16).map((k) => this.manifest(k)));
      for (const m of manifests) for (const f of m?.files ?? []) blobs.delete(f.sha256);
    }
    if (!opts.dryRun) {
      // manifests first: an artifact disappears whole before any of its bodies does
      for (const key of keys)
        await withRetries(() =>
          this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.manifestKey(key) })),
        );
      for (const sha of blobs.keys())
        await withRetries(() =>
          this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(sha) })),
        );
    }
    return {
      artifacts: keys.length,
      blobs: blobs.size,
      bytes: [...blobs.values()].reduce((a, b) => a + b, 0),
    };
  }

  private async entry(
    target: string | ArtifactRef,
    path: string,
  ): Promise<{ entry: ArtifactFile; context: string }> {
    const m = await this.require(target);
    const entry = m.files.find((f) => f.path === path);
    if (!entry) throw new BadInputError(`artifact '${m.key}' has no file '${path}'`);
    return { entry, context: `artifact '${m.key}' file '${path}'` };
  }

  private async manifestWithSha(
    key: string,
  ): Promise<{ manifest: ArtifactManifest; sha256: string } | undefined> {
    const manifestKey = this.manifestKey(key);
    let text: string;
    try {
      const res = await withRetries(() =>
        this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: manifestKey })),
      );
      text = await (res.Body as { transformToString(): Promise<string> }).transformToString();
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw describeS3Failure(err, this.settings.endpoint);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new IntegrityError(`manifest ${manifestKey} is not valid JSON`);
    }
    const result = manifestSchema.safeParse(parsed);
    if (!result.success || result.data.key !== key) {
      throw new IntegrityError(
        `manifest ${manifestKey} is malformed: ${result.error?.issues[0]?.message ?? 'key mismatch'}`,
      );
    }
    return { manifest: result.data, sha256: createHash('sha256').update(text).digest('hex') };
  }
}

function sameFiles(a: ArtifactFile[], b: ArtifactFile[]): boolean {
  return a.length === b.length && a.every((f, i) => f.path === b[i]?.path && f.sha256 === b[i]?.sha256);
}

export async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const tap = new HashTap();
  try {
    await pipeline(createReadStream(file), tap, new PassThrough().resume());
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BadInputError(`file not found: ${file}`);
    throw err;
  }
  const { size } = await stat(file);
  if (size !== tap.bytes) throw new IntegrityError(`${file} changed while it was being hashed`);
  return { sha256: tap.digest(), size };
}

/** Pass-through stream that hashes what flows through it. */
class HashTap extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest('hex');
  }
}

/** Pass-through stream that fails at its end (before the consumer sees 'end') if sha256 or size differ. */
class VerifyTap extends HashTap {
  constructor(
    private readonly expected: ArtifactFile,
    private readonly context: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, enc: BufferEncoding, done: TransformCallback): void {
    if (this.bytes + chunk.length > this.expected.size) {
      done(
        new IntegrityError(`${this.context}: more than the ${this.expected.size} bytes its manifest lists`),
      );
      return;
    }
    super._transform(chunk, enc, done);
  }
  override _flush(done: TransformCallback): void {
    const got = this.digest();
    if (this.bytes !== this.expected.size || got !== this.expected.sha256) {
      done(
        new IntegrityError(
          `${this.context}: sha256 mismatch, stored data is corrupted ` +
            `(expected ${this.expected.sha256}, ${this.expected.size} bytes; got ${got}, ${this.bytes} bytes)`,
        ),
      );
      return;
    }
    done();
  }
}
