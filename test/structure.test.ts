/**
 * configs/structure.yaml end to end through Temporal and S3 (issue 12): the paper's architectures at miniature
 * widths, every upstream network made by its reference implementation (open_clip; MaskGIT's Flax trees;
 * MinD-Vis's checkpoint layout), random weights, saved in the original format and imported with
 * `lea weights import`; the run uses the frozen imported tokenizer, CLIP features, a MaskGIT initialised from
 * the imported transformer and an autoencoder initialised from the imported MAE, and its record names them.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { embeddedEnv, explain, runLea } from './helpers/lea.js';
import { runOracle } from './helpers/oracle.js';

const oracles = fileURLToPath(new URL('./oracles', import.meta.url));
const env = embeddedEnv();
let dir: string;

/** The networks configs/structure.yaml names, and where the reference implementations wrote them. */
const WEIGHTS = [
  { name: 'structure-clip', kind: 'openclip-vit-h14', file: 'vits/openclip.pth', extra: ['--heads', '3'] },
  {
    name: 'structure-vqgan',
    kind: 'maskgit-tokenizer',
    file: 'maskgit/tokenizer.msgpack',
    extra: ['--groups', '4'],
  },
  { name: 'structure-maskgit', kind: 'maskgit-transformer', file: 'maskgit/transformer.msgpack', extra: [] },
  { name: 'structure-mae', kind: 'mindvis-mae', file: 'mae/fmri_encoder.pth', extra: [] },
];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lea-structure-'));
  for (const sub of ['vits', 'maskgit', 'mae']) await mkdir(join(dir, sub));
  runOracle(readFileSync(join(oracles, 'vits.py'), 'utf8'), [join(dir, 'vits'), oracles, '[]']);
  runOracle(readFileSync(join(oracles, 'mindvis_mae.py'), 'utf8'), [join(dir, 'mae')]);
  const sizes = {
    tokenizer: { ch: 4, mult: [1, 1, 2, 2, 4], nrb: 1, lat: 8, codes: 1024 },
    transformer: { slots: 1000, d: 32, heads: 2, ff: 64, depth: 24, length: 256 },
  };
  runOracle(readFileSync(join(oracles, 'maskgit_flax.py'), 'utf8'), [
    join(dir, 'maskgit'),
    JSON.stringify(sizes),
  ]);
  for (const w of WEIGHTS) {
    const args = [
      'weights',
      'import',
      '--kind',
      w.kind,
      '--from',
      join(dir, w.file),
      '--name',
      w.name,
      '--force',
    ];
    const r = runLea([...args, ...w.extra], env);
    assert.equal(r.code, 0, explain(r));
  }
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a config naming weights that are not imported, or that do not fit it, is refused before anything starts', () => {
  const before = runLea(['runs', '--json'], env);
  const missing = runLea(
    ['run', 'configs/structure.yaml', '--set', 'models.imageFeatures.weights=nope-never-imported'],
    env,
  );
  assert.equal(missing.code, 2, explain(missing));
  assert.match(
    missing.stderr,
    /models\.imageFeatures\.weights: weights 'nope-never-imported' are not imported: run lea weights import --kind openclip-vit-h14 --from FILE --name nope-never-imported/,
  );
  const misfit = runLea(['run', 'configs/structure.yaml', '--set', 'models.imageFeatures.dim=64'], env);
  assert.equal(misfit.code, 2, explain(misfit));
  assert.match(misfit.stderr, /weights 'structure-clip' do not fit the config: outDim 64 \(imported: 48\)/);
  const wrongKind = runLea(
    ['run', 'configs/structure.yaml', '--set', 'models.maskgit.initFrom=structure-vqgan'],
    env,
  );
  assert.equal(wrongKind.code, 2, explain(wrongKind));
  assert.match(
    wrongKind.stderr,
    /models\.maskgit\.initFrom: weights 'structure-vqgan' are maskgit-tokenizer, not maskgit-transformer/,
  );
  assert.equal(runLea(['runs', '--json'], env).stdout, before.stdout, 'no run was started');
});

test('lea run configs/structure.yaml completes every stage on the imported networks, and the record names them', () => {
  const r = runLea(['run', 'configs/structure.yaml', '--wait', '--json'], env, 1_200_000);
  assert.equal(r.code, 0, explain(r));
  const record = JSON.parse(r.stdout) as RunRecord;
  assert.equal(record.status, 'completed');
  const names = record.stages.map((s) => s.name);
  assert.ok(!names.includes('mae'), 'stage 0 comes from the imported MAE, it is not trained');
  for (const s of record.stages)
    assert.ok(['completed', 'cached'].includes(s.status), `${s.name}: ${s.status}`);
  const sha = (file: string) =>
    createHash('sha256')
      .update(readFileSync(join(dir, file)))
      .digest('hex');
  const used = (stage: string, input: string) =>
    record.stages.find((s) => s.name === stage)?.weights?.[input];
  const [clip, vqgan, maskgit, mae] = WEIGHTS.map((w) => `${w.name} (${w.kind}, sha256 ${sha(w.file)})`);
  assert.equal(used('features', 'clip'), clip);
  assert.equal(used('tokenizer', 'vqgan'), vqgan);
  assert.equal(used('maskgit', 'init'), maskgit);
  assert.equal(used('maskgit', 'clip'), clip);
  assert.equal(used('fmri-ae', 'mae'), mae);
  assert.equal(used('metrics', 'clip'), clip);
  assert.equal(used('metrics', 'clipMetric'), clip);
  assert.ok(Number.isFinite(record.metrics['decode.clip_twoway']), 'the paper-way CLIP 2-way is computed');
  assert.equal(record.metricDefinitions?.['decode.clip_twoway']?.paper, true);
});
