/**
 * The catalogue's path against a local HTTP server (127.0.0.1) and file:// URLs: `lea weights fetch` checks a
 * published prefix, records a first download's sha256 only with --record-checksums and refuses a changed file
 * afterwards; `lea data fetch` does the same for a manifest whose files list no checksum, through its lock file.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { CATALOGUE } from '../lib/weights/catalogue.js';
import { WEIGHT_KINDS } from '../lib/weights/kinds/index.js';
import type { WeightsRecord } from '../lib/weights/import.js';
import { embeddedEnv, explain, runLeaAsync } from './helpers/lea.js';
import { runOracle } from './helpers/oracle.js';
import { testStore } from './helpers/store.js';

const MINDVIS = fileURLToPath(new URL('./oracles/mindvis_mae.py', import.meta.url));
const env = embeddedEnv();
const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
let dir: string;
let server: Server;
let base = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lea-catalogue-'));
  runOracle(readFileSync(MINDVIS, 'utf8'), [dir]);
  // Serves the folder as it is at each request, so a test can change a file "upstream".
  server = createServer((req, res) => {
    readFile(join(dir, decodeURIComponent(req.url ?? '/')))
      .then((body) => res.writeHead(200, { 'content-length': body.length }).end(body))
      .catch(() => res.writeHead(404).end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

/** The same file with its last byte changed: same size, another sha256. */
function change(file: string): void {
  const body = readFileSync(file);
  body[body.length - 1] = body.at(-1)! ^ 0xff;
  writeFileSync(file, body);
}

test('every catalogue entry names a known kind, a usable checksum and a source', () => {
  assert.equal(new Set(CATALOGUE.map((e) => e.name)).size, CATALOGUE.length);
  for (const e of CATALOGUE) {
    assert.ok(WEIGHT_KINDS.has(e.kind), `${e.name}: kind ${e.kind}`);
    if (e.checksum && 'sha256' in e.checksum) assert.match(e.checksum.sha256, /^[0-9a-f]{64}$/, e.name);
    if (e.checksum && 'sha256Prefix' in e.checksum) {
      assert.match(e.checksum.sha256Prefix, /^[0-9a-f]{8,63}$/, e.name);
      assert.ok(e.file.includes(`-${e.checksum.sha256Prefix}.`), `${e.name}: the prefix is the file name's`);
    }
    if (e.url) assert.ok(new URL(e.url).pathname.endsWith(`/${e.file}`), `${e.name}: url ends in ${e.file}`);
    assert.ok(e.source.length > 20, e.name);
  }
});

test('lea weights fetch: no checksum refused, recorded only with --record-checksums, then verified; a wrong prefix and a changed file refused, nothing stored', async () => {
  const pth = join(dir, 'fmri_encoder.pth');
  const http = `${base}/fmri_encoder.pth`;
  const lock = join(dir, 'weights.lock.yaml');
  const name = unique('mae');
  const fetch = (entry: string, url: string, as: string, ...more: string[]) =>
    runLeaAsync(['weights', 'fetch', entry, '--url', url, '--name', as, '--lock', lock, ...more], env);

  const unrecorded = await fetch('mindvis-mae-god', http, name);
  assert.equal(unrecorded.code, 2, explain(unrecorded));
  assert.match(unrecorded.stderr, /no sha256 is published for fmri_encoder\.pth .* --record-checksums/);
  assert.ok(!existsSync(lock), 'no lock file without --record-checksums');

  const first = await fetch('mindvis-mae-god', pathToFileURL(pth).href, name, '--record-checksums', '--json');
  assert.equal(first.code, 0, explain(first));
  const rec = JSON.parse(first.stdout) as WeightsRecord;
  assert.equal(rec.kind, 'mindvis-mae');
  assert.equal(rec.source.sha256, sha(readFileSync(pth)));
  const locked = parseYaml(readFileSync(lock, 'utf8')) as { files: Record<string, unknown> };
  assert.deepEqual(locked.files['mindvis-mae-god'], { sha256: rec.source.sha256, size: rec.source.size });

  const again = await fetch('mindvis-mae-god', http, name);
  assert.equal(again.code, 0, explain(again));

  const wrong = unique('alexnet');
  const prefix = await fetch('alexnet', http, wrong);
  assert.equal(prefix.code, 1, explain(prefix));
  assert.match(
    prefix.stderr,
    new RegExp(
      `alexnet-owt-7be5be79\\.pth: sha256 mismatch: expected a sha256 starting 7be5be79, got ${rec.source.sha256}`,
    ),
  );
  const shown = await runLeaAsync(['weights', 'show', wrong], env);
  assert.match(shown.stderr, /not imported/, 'nothing stored');

  change(pth);
  const changed = await fetch('mindvis-mae-god', http, unique('mae-changed'));
  assert.equal(changed.code, 1, explain(changed));
  assert.match(
    changed.stderr,
    new RegExp(`fmri_encoder\\.pth: sha256 mismatch: expected ${rec.source.sha256}, got`),
  );

  const noUrl = await runLeaAsync(['weights', 'fetch', 'mindvis-mae-bold5000', '--lock', lock], env);
  assert.equal(noUrl.code, 2, explain(noUrl));
  assert.match(noUrl.stderr, /'mindvis-mae-bold5000' have no known public URL: pass --url/);
});

test('lea data fetch: files without checksums refused, recorded in the lock only with --record-checksums; a changed file refused on the next fetch', async () => {
  const npy = join(dir, 'betas.npy');
  writeFileSync(npy, Buffer.concat([Buffer.from('\x93NUMPY\x01\x00', 'latin1'), randomBytes(4000)]));
  writeFileSync(join(dir, 'labels.json'), JSON.stringify({ id: randomBytes(8).toString('hex') }));
  const manifest = join(dir, 'ds.yaml');
  const lock = join(dir, 'ds.lock.yaml');
  writeFileSync(
    manifest,
    `dataset: ${unique('ds')}\nbaseUrl: ${base}/\nfiles:\n` +
      `  - { name: betas.npy, sha256: null }\n  - { name: labels.json, url: ${pathToFileURL(join(dir, 'labels.json')).href}, sha256: null }\n`,
  );
  const fetch = (...more: string[]) => runLeaAsync(['data', 'fetch', manifest, '--json', ...more], env);

  const refused = await fetch();
  assert.equal(refused.code, 2, explain(refused));
  assert.match(
    refused.stderr,
    /files\.0 \(betas\.npy\) has no sha256 in the manifest or in .*ds\.lock\.yaml/,
  );
  assert.ok(!existsSync(lock));

  const recorded = await fetch('--record-checksums');
  assert.equal(recorded.code, 0, explain(recorded));
  const out = JSON.parse(recorded.stdout) as { cached: boolean; recorded: string[]; ref: { key: string } };
  assert.deepEqual(out.recorded.sort(), ['betas.npy', 'labels.json']);
  const files = (parseYaml(readFileSync(lock, 'utf8')) as { files: Record<string, { sha256: string }> })
    .files;
  assert.equal(files['betas.npy']!.sha256, sha(readFileSync(npy)));

  const again = await fetch();
  assert.equal(again.code, 0, explain(again));
  assert.equal(
    (JSON.parse(again.stdout) as { cached: boolean }).cached,
    true,
    'verified by the lock: same artifact',
  );

  // On a machine whose store lacks the files, the changed upstream file is downloaded, and refused.
  const store = testStore();
  try {
    await store.deleteArtifacts([out.ref.key]);
  } finally {
    store.s3.destroy();
  }
  change(npy);
  const changed = await fetch('--record-checksums');
  assert.equal(changed.code, 1, explain(changed));
  assert.match(
    changed.stderr,
    new RegExp(`betas\\.npy: sha256 mismatch: expected ${files['betas.npy']!.sha256}, got`),
  );
  assert.equal(
    (parseYaml(readFileSync(lock, 'utf8')) as { files: Record<string, { sha256: string }> }).files[
      'betas.npy'
    ]!.sha256,
    files['betas.npy']!.sha256,
    'the lock is never rewritten',
  );
});
