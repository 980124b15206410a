/** Dataset download and verification against a local HTTP server (and the real S3 test server for storage). */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import {
  downloadFile,
  fetchDataset,
  loadDatasetManifest,
  type DatasetManifest,
} from '../lib/data/download.js';
import { BadInputError, IntegrityError } from '../lib/errors.js';
import { runLea } from './helpers/lea.js';
import { testStore } from './helpers/store.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const npy = (n: number) => Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), randomBytes(n)]);

interface Route {
  body: Buffer;
  /** Serve this many bytes on the first full request, then drop the connection. */
  dropAfter?: number;
  status?: number[];
  ignoreRange?: boolean;
}
const routes = new Map<string, Route>();
const requests: { path: string; range?: string }[] = [];
let server: Server;
let base = '';

function handle(req: IncomingMessage, res: import('node:http').ServerResponse) {
  const path = req.url ?? '';
  requests.push({ path, range: req.headers.range });
  const route = routes.get(path);
  if (!route) return res.writeHead(404).end('not found');
  const forced = route.status?.shift();
  if (forced) return res.writeHead(forced).end('busy');
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = m && !route.ignoreRange ? Number(m[1]) : 0;
  const body = route.body.subarray(start);
  res.writeHead(start > 0 ? 206 : 200, {
    'content-length': body.length,
    ...(start > 0 ? { 'content-range': `bytes ${start}-${route.body.length - 1}/${route.body.length}` } : {}),
  });
  if (route.dropAfter !== undefined && start === 0) {
    const cut = route.dropAfter;
    route.dropAfter = undefined;
    res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 100));
    return;
  }
  res.end(body);
}

before(async () => {
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const store = testStore();
after(() => store.s3.destroy());

function serve(name: string, route: Route): { name: string; url: string; sha256: string; size: number } {
  const path = `/${randomBytes(4).toString('hex')}/${name}`;
  routes.set(path, route);
  return { name, url: base + path, sha256: sha(route.body), size: route.body.length };
}

const dir = () => mkdtempSync(join(tmpdir(), 'lea-dl-'));

test('a download whose connection drops midway resumes with a byte range and verifies', async () => {
  const body = npy(3 * 2 ** 20);
  const f = serve('betas.npy', { body, dropAfter: 2 ** 20 });
  const dest = join(dir(), 'betas.npy');
  const seen: number[] = [];
  await downloadFile(f, dest, { onProgress: (b) => seen.push(b) });
  assert.equal(sha(readFileSync(dest)), f.sha256);
  const mine = requests.filter((r) => f.url.endsWith(r.path));
  assert.equal(mine.length, 2, 'one interrupted request, one resumed');
  assert.match(mine[1]!.range ?? '', /^bytes=\d+-$/);
  // How much of the first MiB arrives before the reset depends on timing; what matters is that the kept bytes
  // are not fetched again and that no byte past the cut is assumed.
  const from = Number(/\d+/.exec(mine[1]!.range!)![0]);
  assert.ok(from > 0 && from <= 2 ** 20, `resumed from byte ${from}, within the first MiB that was sent`);
  assert.equal(Math.max(...seen), body.length);
});

test('a server that ignores the range is restarted from zero, not appended to', async () => {
  const f = serve('x.npy', { body: npy(2 ** 20), dropAfter: 300_000, ignoreRange: true });
  const dest = join(dir(), 'x.npy');
  await downloadFile(f, dest);
  assert.equal(sha(readFileSync(dest)), f.sha256);
});

test('transient 5xx answers are retried; a 404 is not, and names the file', async () => {
  const f = serve('flaky.npy', { body: npy(1000), status: [503, 500] });
  await downloadFile(f, join(dir(), 'flaky.npy'));
  const missing = { name: 'sbj_9.npz', url: `${base}/absent/sbj_9.npz`, sha256: '0'.repeat(64), size: 10 };
  const before = requests.length;
  await assert.rejects(downloadFile(missing, join(dir(), 'sbj_9.npz')), (err: unknown) => {
    assert.ok(err instanceof BadInputError);
    assert.match(err.message, /sbj_9\.npz.*HTTP 404/);
    return true;
  });
  assert.equal(requests.length - before, 1, 'no retry of a 404');
});

test('checksum mismatch, truncation and wrong format are clear, non-retryable errors and leave nothing', async () => {
  const d = dir();
  const good = serve('a.npy', { body: npy(5000) });
  await assert.rejects(
    downloadFile({ ...good, sha256: 'f'.repeat(64) }, join(d, 'a.npy')),
    (err: unknown) => {
      assert.ok(err instanceof IntegrityError);
      assert.match(err.message, /a\.npy: sha256 mismatch/);
      return true;
    },
  );
  await assert.rejects(
    downloadFile({ ...good, size: good.size + 100 }, join(d, 'a.npy')),
    /a\.npy: truncated/,
  );
  const notNpy = serve('b.npy', { body: Buffer.from('<html>login page</html>') });
  await assert.rejects(downloadFile(notNpy, join(d, 'b.npy')), /b\.npy: wrong format: not an \.npy file/);
  const badJson = serve('c.json', { body: Buffer.from('{"unterminated": ') });
  await assert.rejects(downloadFile(badJson, join(d, 'c.json')), /c\.json: wrong format: not valid JSON/);
  await assert.rejects(
    downloadFile({ ...good, url: 'ftp://example/a.npy' }, join(d, 'z.npy')),
    /unsupported URL scheme/,
  );
  assert.deepEqual(readdirSync(d), [], 'no file or partial is left behind');
});

function manifestFor(files: { name: string; url: string; sha256: string; size: number }[]): DatasetManifest {
  return {
    dataset: 'god',
    files: files.map((f) => ({ name: f.name, url: f.url, sha256: f.sha256, size: f.size })),
  };
}

test('fetchDataset stores the verified files as one artifact; a second fetch downloads nothing', async () => {
  const files = [
    serve('sbj_1.npz', { body: Buffer.concat([Buffer.from('PK\x03\x04'), randomBytes(4000)]) }),
    serve('meta.json', { body: Buffer.from(`{"k": "${randomBytes(8).toString('hex')}"}`) }),
  ];
  const manifest = manifestFor(files);
  const cacheDir = dir();
  const first = await fetchDataset(manifest, 'test-manifest', store, { cacheDir });
  assert.equal(first.cached, false);
  assert.deepEqual(first.downloaded.sort(), ['meta.json', 'sbj_1.npz']);
  const m = await store.require(first.ref);
  assert.deepEqual(m.files.map((f) => f.sha256).sort(), files.map((f) => f.sha256).sort());
  const count = requests.length;
  const second = await fetchDataset(manifest, 'test-manifest', store, { cacheDir });
  assert.equal(second.cached, true);
  assert.equal(second.ref.key, first.ref.key);
  assert.equal(requests.length, count, 'no request on the second fetch');
});

test('a failed fetch stores no dataset artifact', async () => {
  const good = serve('ok.npy', { body: npy(100) });
  const bad = serve('bad.npy', { body: npy(100) });
  const manifest = manifestFor([good, { ...bad, sha256: '1'.repeat(64) }]);
  await assert.rejects(
    fetchDataset(manifest, 'm.yaml', store, { cacheDir: dir() }),
    /bad\.npy: sha256 mismatch/,
  );
  const key = `datasets/god/`;
  const listed = await store.list(key);
  for (const k of listed) {
    const files = (await store.require(k)).files.map((f) => f.path);
    assert.ok(!files.includes('bad.npy'), `artifact ${k} holds the bad file`);
  }
});

test('lea data fetch reads a manifest of file:// URLs, and bad manifests are named', () => {
  const src = dir();
  const body = npy(2048);
  writeFileSync(join(src, 'sbj_1.npy'), body);
  const manifestFile = join(dir(), 'local.yaml');
  writeFileSync(
    manifestFile,
    `dataset: local-${randomBytes(3).toString('hex')}\nbaseUrl: ${pathToFileURL(src).href}/\nfiles:\n  - { name: sbj_1.npy, sha256: ${sha(body)}, size: ${body.length} }\n`,
  );
  const first = runLea(['data', 'fetch', '--manifest', manifestFile, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const out = JSON.parse(first.stdout);
  assert.equal(out.cached, false);
  assert.match(out.ref.key, /^datasets\/local-[0-9a-f]+\/raw-[0-9a-f]{16}$/);
  const again = runLea(['data', 'fetch', '--manifest', manifestFile, '--json']);
  assert.equal(JSON.parse(again.stdout).cached, true);
  const real = runLea(['data', 'fetch', '--manifest', 'configs/datasets/god.yaml']);
  assert.equal(real.code, 2);
  assert.match(real.stderr, /god\.yaml: files\.0 \(sbj_1\.npz\) has no url/);
  const real2 = runLea([
    'data',
    'fetch',
    '--manifest',
    'configs/datasets/god.yaml',
    '--base-url',
    'https://example.org/god/',
  ]);
  assert.equal(real2.code, 2);
  assert.match(real2.stderr, /sbj_1\.npz\) has no sha256/);
  writeFileSync(manifestFile, 'dataset: god\nfiles: []\n');
  const empty = runLea(['data', 'fetch', '--manifest', manifestFile]);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /local\.yaml: invalid dataset manifest: files/);
  assert.ok(!existsSync(join(src, 'sbj_1.npy.partial')));
});

test('the shipped manifests parse', () => {
  for (const f of ['configs/datasets/god.yaml', 'configs/datasets/bold5000.yaml']) {
    const m = loadDatasetManifest(f);
    assert.ok(m.files.length >= 9, f);
  }
});
