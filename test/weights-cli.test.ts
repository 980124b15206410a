/**
 * `lea weights import|list|show` against the test servers: a MinD-Vis .pth imported and described; bad files
 * and bad flags refused with one error naming the file and the tensor, global or field, and nothing stored.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { readNpy } from '../lib/tensors/npy.js';
import type { WeightsRecord } from '../lib/weights/import.js';
import { embeddedEnv, explain, runLea } from './helpers/lea.js';
import { runOracle } from './helpers/oracle.js';
import { maxRelError } from './helpers/compare.js';

const MINDVIS = fileURLToPath(new URL('./oracles/mindvis_mae.py', import.meta.url));
let dir: string;
let good: string;
const env = embeddedEnv();
const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;

/** Variants of the good file, each broken in one way, written with torch.save as a user's file would be. */
const BREAK = String.raw`
import os, sys, torch
d = sys.argv[1]
class Config_MBM_fMRI:  # the class the good file's config was pickled from, so torch.load can rebuild it
    pass
class Evil:  # pickles as a call of os.system: a reader that executed pickles would run it
    def __reduce__(self):
        return (os.system, ('echo pwned > ' + d + '/pwned',))
ck = torch.load(d + '/fmri_encoder.pth', weights_only=False)
ck['model']['decoder_pred.bias'] = torch.zeros(5)
torch.save(ck, d + '/wrong-shape.pth')
ck = torch.load(d + '/fmri_encoder.pth', weights_only=False)
ck['model']['blocks.0.attn.qkv.bias'] = Evil()
torch.save(ck, d + '/evil.pth')
`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lea-weights-cli-'));
  runOracle(readFileSync(MINDVIS, 'utf8'), [dir]);
  runOracle(BREAK, [dir]);
  good = join(dir, 'fmri_encoder.pth');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

test('a MinD-Vis .pth imports as weights/NAME with its provenance; show and list describe it; a second import is a no-op', () => {
  const name = unique('mae');
  const r = runLea(
    ['weights', 'import', '--kind', 'mindvis-mae', '--from', good, '--name', name, '--json'],
    env,
  );
  assert.equal(r.code, 0, explain(r));
  const rec = JSON.parse(r.stdout) as WeightsRecord;
  assert.equal(rec.kind, 'mindvis-mae');
  assert.equal(rec.source.sha256, sha256(good));
  assert.equal(rec.source.format, 'torch-zip');
  assert.equal(rec.config.width, 32);
  assert.equal(rec.notes.heads, 'config entry');
  assert.equal(rec.unused.count, 0);
  const shown = runLea(['weights', 'show', name, '--json'], env);
  assert.equal(shown.code, 0, explain(shown));
  assert.deepEqual(JSON.parse(shown.stdout), rec);
  const listed = runLea(['weights', 'list', '--json'], env);
  assert.ok((JSON.parse(listed.stdout) as WeightsRecord[]).some((w) => w.name === name));
  const again = runLea(['weights', 'import', '--kind', 'mindvis-mae', '--from', good, '--name', name], env);
  assert.equal(again.code, 0, explain(again));
  const text = runLea(['weights', 'show', name], env);
  assert.match(text.stdout, /mindvis-mae \(mapping v1\), [\d,]+ parameters/);
});

/** Runs an import that must fail with exit 2 (1 for an integrity error) and store nothing under the name. */
function refused(args: string[], message: RegExp, code = 2): void {
  const name = unique('bad');
  const r = runLea(['weights', 'import', ...args, '--name', name], env);
  assert.equal(r.code, code, explain(r));
  const line = r.stderr.trim().split('\n').at(-1)!;
  assert.match(line, message);
  const shown = runLea(['weights', 'show', name], env);
  assert.equal(shown.code, 2, 'nothing may be stored');
  assert.match(shown.stderr, /not imported/);
}

test('a wrong --sha256, a tensor of the wrong shape, a disallowed global, --expect full on a reduced file, a flag the kind does not read: refused, nothing stored', () => {
  refused(
    ['--kind', 'mindvis-mae', '--from', good, '--sha256', '0'.repeat(64)],
    /fmri_encoder\.pth: sha256 is [0-9a-f]{64}, --sha256 says 0{64}/,
    1,
  );
  refused(
    ['--kind', 'mindvis-mae', '--from', join(dir, 'wrong-shape.pth')],
    /wrong-shape\.pth: tensor 'decoder_pred\.bias' has shape \[5\], expected \[4\]/,
  );
  refused(
    ['--kind', 'mindvis-mae', '--from', join(dir, 'evil.pth')],
    /evil\.pth.*disallowed global posix\.system in entry 'model'/,
  );
  refused(
    ['--kind', 'mindvis-mae', '--from', good, '--expect', 'full'],
    /--expect full: not the full-size mindvis-mae: patchSize is 4, the published network has 16/,
  );
  refused(
    ['--kind', 'openclip-vit-h14', '--from', good],
    /fmri_encoder\.pth: .*disallowed global __main__\.Config_MBM_fMRI in the root object/,
  );
  refused(['--kind', 'nonsense', '--from', good], /unknown weights kind 'nonsense'/);
  refused(
    ['--kind', 'mindvis-mae', '--from', good, '--numerics', 'maskgit-flax'],
    /--numerics does not apply to --kind mindvis-mae \(it reads --heads\)/,
  );
  const badChoice = runLea(
    ['weights', 'import', '--kind', 'maskgit-tokenizer', '--from', good, '--numerics', 'flax', '--name', 'x'],
    env,
  );
  assert.equal(badChoice.code, 2, explain(badChoice));
  assert.match(badChoice.stderr, /'--numerics <choice>' argument 'flax' is invalid.*lea-port, maskgit-flax/);
  refused(['--kind', 'mindvis-mae', '--from', pathToFileURL(good).href], /a URL needs --sha256/);
  assert.throws(() => readFileSync(join(dir, 'pwned')), /ENOENT/, 'the pickle never ran');
});

test('a file:// URL with its sha256 imports through the verified download', () => {
  const name = unique('mae-url');
  const r = runLea(
    [
      'weights',
      'import',
      '--kind',
      'mindvis-mae',
      '--from',
      pathToFileURL(good).href,
      '--sha256',
      sha256(good),
      '--name',
      name,
      '--json',
    ],
    env,
  );
  assert.equal(r.code, 0, explain(r));
  assert.equal((JSON.parse(r.stdout) as WeightsRecord).source.sha256, sha256(good));
});

test('lea embed runs imported networks through their own preprocessing: open_clip features and torchvision logits equal the references', async () => {
  const oracles = fileURLToPath(new URL('./oracles', import.meta.url));
  const vits = join(dir, 'vits');
  await mkdir(vits);
  runOracle(readFileSync(join(oracles, 'vits.py'), 'utf8'), [vits, oracles, '[]']);
  // reduced widths with smaller heads than the published 80: --heads says how many
  for (const [kind, file, output, heads] of [
    ['openclip-vit-h14', 'openclip', 'features', '3'],
    ['torchvision-vit-h14', 'torchvision', 'logits', '4'],
  ] as const) {
    const name = unique(file);
    const imp = runLea(
      [
        'weights',
        'import',
        '--kind',
        kind,
        '--from',
        join(vits, `${file}.pth`),
        '--name',
        name,
        '--heads',
        heads,
      ],
      env,
    );
    assert.equal(imp.code, 0, explain(imp));
    const out = join(dir, `${file}-out.npy`);
    const r = runLea(
      ['embed', '--weights', name, '--images', join(vits, `${file}-images.npy`), '--out', out],
      env,
    );
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, new RegExp(`${output} float32`));
    const got = (await readNpy(out)).data as Float32Array;
    const want = (await readNpy(join(vits, `${file}-${output}.npy`))).data as Float32Array;
    const err = maxRelError(got, want);
    assert.ok(err < 1e-4, `${kind}: max relative difference ${err}`);
  }
  const bad = runLea(
    [
      'embed',
      '--weights',
      unique('missing'),
      '--images',
      join(vits, 'openclip-images.npy'),
      '--out',
      join(dir, 'x.npy'),
    ],
    env,
  );
  assert.equal(bad.code, 2, explain(bad));
  assert.match(bad.stderr, /are not imported: run lea weights import/);
});
