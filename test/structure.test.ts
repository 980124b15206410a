/**
 * configs/structure.yaml end to end through Temporal and S3 (issue 12): the paper's architectures at miniature
 * widths, every upstream network made by its reference implementation (open_clip; MaskGIT's Flax trees;
 * MinD-Vis's checkpoint layout), random weights, saved in the original format and imported with
 * `lea weights import`; the run uses the frozen imported tokenizer, CLIP features, a MaskGIT initialised from
 * the imported transformer and an autoencoder initialised from the imported MAE, and its record names them.
 * Two subjects run as one suite (issue 12): the image side is computed once, the report has a row per subject.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { upstreamChoices } from '../lib/config/upstream-choices.js';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { embeddedEnv, explain, repoRoot, runLea } from './helpers/lea.js';
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

test('a config naming weights that are not imported, or that do not fit it (architecture, numerics), is refused before anything starts', () => {
  const before = runLea(['runs', '--json'], env);
  /** `lea run` of the structure config with one field set: refused (exit 2) with `message`. */
  const refused = (set: string, message: RegExp) => {
    const r = runLea(['run', 'configs/structure.yaml', '--set', set], env);
    assert.equal(r.code, 2, explain(r));
    assert.match(r.stderr, message);
  };
  refused(
    'models.imageFeatures.weights=nope-never-imported',
    /models\.imageFeatures\.weights: weights 'nope-never-imported' are not imported: run lea weights import --kind openclip-vit-h14 --from FILE --name nope-never-imported/,
  );
  refused(
    'models.imageFeatures.dim=64',
    /weights 'structure-clip' do not fit the config: outDim 64 \(imported: 48\)/,
  );
  // imported with LEA's numerics (the default), run with MaskGIT's
  refused(
    'models.maskgit.numerics=maskgit-flax',
    /models\.maskgit\.initFrom: weights 'structure-maskgit' do not fit the config: numerics "maskgit-flax" \(imported: "lea-port"\)/,
  );
  refused(
    'models.maskgit.initFrom=structure-vqgan',
    /models\.maskgit\.initFrom: weights 'structure-vqgan' are maskgit-tokenizer, not maskgit-transformer/,
  );
  assert.equal(runLea(['runs', '--json'], env).stdout, before.stdout, 'no run was started');
});

test('the structure suite (two subjects, one lea run) completes every stage on the imported networks: the image side once, a row per subject and the mean', async (t) => {
  const baseline = join(dir, 'baseline.yaml');
  // a test fixture, not the paper's numbers: a pixel-correlation floor any decoding clears
  await writeFile(
    baseline,
    'name: structure-floor\nsource: test fixture\nmetrics:\n  decode.twoway_pcc: { value: 0.4, tolerance: 0.4, better: higher }\n',
  );
  const r = runLea(
    [
      'run',
      'configs/structure.yaml',
      'configs/structure-sbj_2.yaml',
      '--baseline',
      baseline,
      '--wait',
      '--json',
    ],
    env,
    1_500_000,
  );
  assert.equal(r.code, 0, explain(r));
  const suite = JSON.parse(r.stdout) as RunRecord;
  for (const m of suite.members ?? [])
    t.diagnostic(
      `${m.subject}: ${m.stages.map((s) => `${s.name} ${s.seconds?.toFixed(0) ?? '-'}s`).join(', ')}`,
    );
  assert.equal(suite.status, 'completed');
  assert.equal(suite.verdict, 'pass');
  const members = suite.members ?? [];
  assert.deepEqual(
    members.map((m) => m.subject),
    ['sbj_1', 'sbj_2'],
  );
  for (const m of members) {
    assert.equal(m.status, 'completed', m.runId);
    assert.ok(
      !m.stages.some((s) => s.name === 'mae'),
      'stage 0 comes from the imported MAE, it is not trained',
    );
    for (const s of m.stages)
      assert.ok(['completed', 'cached'].includes(s.status), `${m.subject} ${s.name}: ${s.status}`);
    assert.ok(Number.isFinite(m.metrics['decode.clip_twoway']), 'the paper-way CLIP 2-way is computed');
  }
  // the image side is the dataset's: computed by one run, found cached by the other; the subject side twice
  const computed = (stage: string) =>
    members.filter((m) => m.stages.find((s) => s.name === stage)?.status === 'completed').length;
  for (const stage of ['raw', 'images', 'image-features', 'tokenizer', 'maskgit'])
    assert.equal(computed(stage), 1, stage);
  for (const stage of ['prepare', 'fmri-ae', 'features', 'latents', 'ridge', 'decode', 'encode', 'metrics'])
    assert.equal(computed(stage), 2, stage);
  const mean = (members[0]!.metrics['decode.clip_twoway']! + members[1]!.metrics['decode.clip_twoway']!) / 2;
  assert.ok(Math.abs(suite.metrics['decode.clip_twoway']! - mean) < 1e-12, 'the suite reports the mean');

  const sha = (file: string) =>
    createHash('sha256')
      .update(readFileSync(join(dir, file)))
      .digest('hex');
  const record = members[0]!;
  const used = (stage: string, input: string) =>
    record.stages.find((s) => s.name === stage)?.weights?.[input];
  const [clip, vqgan, maskgit, mae] = WEIGHTS.map((w) => `${w.name} (${w.kind}, sha256 ${sha(w.file)})`);
  assert.equal(used('image-features', 'clip'), clip);
  assert.equal(used('tokenizer', 'vqgan'), vqgan);
  assert.equal(used('maskgit', 'init'), maskgit);
  assert.equal(used('maskgit', 'clip'), clip);
  assert.equal(used('fmri-ae', 'mae'), mae);
  assert.equal(used('metrics', 'clip'), clip);
  assert.equal(used('metrics', 'clipMetric'), clip);
  assert.equal(record.metricDefinitions?.['decode.clip_twoway']?.paper, true);
  // every upstream choice that applies, with the value the run took (issue 31)
  const cfg = loadExperimentConfig(join(repoRoot, 'configs/structure.yaml')) as ReproductionConfig;
  assert.deepEqual(record.choices, upstreamChoices(cfg));
  assert.equal(record.choices?.['models.tokenizer.numerics'], 'lea-port');
  assert.equal(record.choices?.['models.maskgit.numerics'], 'lea-port');

  // one report: a row per subject, the mean and the baseline's value beside it
  const out = join(dir, 'suite-report');
  const rep = runLea(['report', suite.runId, '--out', out], env);
  assert.equal(rep.code, 0, explain(rep));
  const html = readFileSync(join(out, 'index.html'), 'utf8');
  for (const row of ['sbj_1', 'sbj_2', 'mean', 'baseline'])
    assert.match(html, new RegExp(`data-subject="${row}"`));
  assert.match(html, /Pass against baseline <b>structure-floor<\/b>/);
});
