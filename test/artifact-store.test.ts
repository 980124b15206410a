/** The artifact store against the real SeaweedFS that scripts/test.sh starts. */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { BadInputError, IntegrityError, ServerUnreachableError } from '../lib/errors.js';
import { ArtifactStore, checkKey } from '../lib/storage/artifact-store.js';
import { createS3Client } from '../lib/storage/s3.js';
import { loadInfraSettings } from '../lib/config/infra.js';
import { repoRoot } from './helpers/lea.js';
import { testStore, uniqueKey } from './helpers/store.js';

const store = testStore();
after(() => store.s3.destroy());
const fixture = join(repoRoot, 'test/fixtures/large-transfer.ts');

test('put then read back files, by key and by reference; a same-content re-put is idempotent', async () => {
  const key = uniqueKey('roundtrip');
  const dir = mkdtempSync(join(tmpdir(), 'lea-store-'));
  writeFileSync(join(dir, 'a.txt'), 'alpha\n');
  const ref = await store.put(
    key,
    [
      { path: 'a.txt', fromFile: join(dir, 'a.txt') },
      { path: 'nested/b.bin', bytes: new Uint8Array([1, 2, 3]) },
    ],
    { stage: 'unit' },
  );
  assert.equal((await store.readBytes(ref, 'a.txt')).toString(), 'alpha\n');
  assert.deepEqual([...(await store.readBytes(key, 'nested/b.bin'))], [1, 2, 3]);
  const m = await store.require(ref);
  assert.deepEqual(m.meta, { stage: 'unit' });
  assert.deepEqual(await store.list(key), [key]);
  const again = await store.put(key, [
    { path: 'a.txt', bytes: Buffer.from('alpha\n') },
    { path: 'nested/b.bin', bytes: new Uint8Array([1, 2, 3]) },
  ]);
  assert.equal(again.manifestSha256, ref.manifestSha256, 'identical files: the stored artifact is returned');
  await assert.rejects(store.put(key, [{ path: 'a.txt', bytes: Buffer.from('other') }]), IntegrityError);
  const out = join(dir, 'dl');
  await store.download(ref, out);
  assert.equal(readFileSync(join(out, 'nested/b.bin')).length, 3);
  assert.equal(await store.manifest(uniqueKey('absent')), undefined);
  await assert.rejects(store.readBytes(key, 'missing.txt'), /has no file 'missing.txt'/);
  await assert.rejects(store.manifest({ key, manifestSha256: '0'.repeat(64) }), IntegrityError);
});

test('keys that could escape their prefix are refused and nothing is written', async () => {
  for (const bad of [
    '../x',
    'a/../../b',
    '/abs',
    'a//b',
    'a/./b',
    '.',
    '',
    'a\\b',
    'a b',
    'x/'.repeat(300),
  ]) {
    assert.throws(() => checkKey(bad), BadInputError, JSON.stringify(bad));
    await assert.rejects(store.put(bad, [{ path: 'f', bytes: new Uint8Array([1]) }]), BadInputError);
  }
  const key = uniqueKey('badpath');
  await assert.rejects(
    store.put(key, [{ path: '../escape', bytes: new Uint8Array([9]) }]),
    /invalid file path/,
  );
  await assert.rejects(
    store.put(key, [
      { path: 'f', bytes: new Uint8Array([1]) },
      { path: 'f', bytes: new Uint8Array([2]) },
    ]),
    /twice/,
  );
  assert.equal(await store.exists(key), false);
});

test('a blob whose bytes were changed on the server is refused on read, and no file is left', async () => {
  const key = uniqueKey('corrupt');
  const body = Buffer.from(`precious weights ${key}\n`.repeat(1000));
  await store.put(key, [{ path: 'w.bin', bytes: body }]);
  const entry = (await store.require(key)).files[0]!;
  const tampered = Buffer.from(body);
  tampered[100] = tampered[100]! ^ 0xff;
  await store.s3.send(
    new PutObjectCommand({ Bucket: store.bucket, Key: store.blobKey(entry.sha256), Body: tampered }),
  );
  await assert.rejects(store.readBytes(key, 'w.bin'), (err: unknown) => {
    assert.ok(err instanceof IntegrityError);
    assert.match(err.message, /sha256 mismatch/);
    assert.match(err.message, new RegExp(`artifact '${key}' file 'w.bin'`));
    return true;
  });
  const dir = mkdtempSync(join(tmpdir(), 'lea-corrupt-'));
  await assert.rejects(store.downloadFile(key, 'w.bin', join(dir, 'w.bin')), IntegrityError);
  assert.deepEqual(readdirSync(dir), [], 'neither the file nor a partial download remains');
  const truncated = tampered.subarray(0, 10);
  await store.s3.send(
    new PutObjectCommand({ Bucket: store.bucket, Key: store.blobKey(entry.sha256), Body: truncated }),
  );
  await assert.rejects(store.readBytes(key, 'w.bin'), /sha256 mismatch/);
});

function runFixture(args: string[]) {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', fixture, ...args], {
    cwd: repoRoot,
    env: process.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  return { child, lines };
}

test('a 200 MB blob streams up (multipart) and down with memory well under its size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-big-'));
  const key = uniqueKey('big');
  const { child, lines } = runFixture(['roundtrip', '200', key, dir]);
  let done: { sha256: string; roundTripSha256: string; baselineRss: number; maxRss: number } | undefined;
  for await (const line of lines) {
    const msg = JSON.parse(line);
    if (msg.event === 'done') done = msg;
  }
  await new Promise((r) => child.on('close', r));
  assert.equal(child.exitCode, 0);
  assert.ok(done);
  assert.equal(done.roundTripSha256, done.sha256);
  const growthMb = (done.maxRss - done.baselineRss) / 2 ** 20;
  console.log(
    `200 MB round trip: peak RSS ${(done.maxRss / 2 ** 20).toFixed(0)} MB, growth ${growthMb.toFixed(0)} MB`,
  );
  assert.ok(growthMb < 100, `memory grew by ${growthMb.toFixed(0)} MB while moving 200 MB`);
  const m = await store.require(key);
  assert.equal(m.files[0]!.size, 200 * 2 ** 20);
});

test('an upload killed midway leaves no visible artifact and no blob', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-kill-'));
  const key = uniqueKey('killed');
  const { child, lines } = runFixture(['upload-only', '64', key, dir]);
  let blobKey = '';
  let killedAt = -1;
  for await (const line of lines) {
    const msg = JSON.parse(line);
    if (msg.event === 'ready') blobKey = msg.blobKey;
    if (msg.event === 'progress' && msg.done > 0 && msg.done < msg.total) {
      killedAt = msg.done;
      child.kill('SIGKILL');
      break;
    }
    assert.notEqual(msg.event, 'done', 'the upload finished before it could be killed');
  }
  await new Promise((r) => (child.exitCode !== null || child.signalCode ? r(null) : child.on('close', r)));
  assert.ok(killedAt > 0, 'killed during the upload');
  assert.equal(await store.exists(key), false);
  assert.deepEqual(await store.list(key), []);
  await assert.rejects(
    store.s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: blobKey })),
    (err: unknown) => {
      assert.equal((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode, 404);
      return true;
    },
  );
});

test('a plain S3 client reads an artifact through its manifest', async () => {
  const key = uniqueKey('plain');
  await store.put(key, [{ path: 'hello.txt', bytes: Buffer.from('hello, plain client') }]);
  const get = async (k: string) =>
    (await store.s3.send(new GetObjectCommand({ Bucket: store.bucket, Key: k }))).Body!.transformToString();
  const manifest = JSON.parse(await get(`artifacts/${key}/manifest.json`));
  const sha = manifest.files[0].sha256;
  assert.equal(await get(`blobs/sha256/${sha.slice(0, 2)}/${sha}`), 'hello, plain client');
});

test('a missing S3 server is named in the error', async () => {
  const s = loadInfraSettings({
    ...process.env,
    AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
    LEA_BUCKET: 'nope',
  }).s3;
  const dead = new ArtifactStore(createS3Client(s), s);
  await assert.rejects(dead.checkBucket(), (err: unknown) => {
    assert.ok(err instanceof ServerUnreachableError);
    assert.match(err.message, /127\.0\.0\.1:9 did not answer/);
    return true;
  });
  dead.s3.destroy();
});
