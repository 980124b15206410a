/**
 * Exact resume: 40 steps straight against 20 steps, a checkpoint, and 20 more in a NEW process (`lea train
 * --resume`) give bit-identical weights and optimizer state (native backend, same threads), for the
 * autoencoder and for MaskGIT (which also draws masks, dropout and flips). Checkpoints of another model config
 * are refused naming the tensor. The artifact-store checkpoint store does the same through the real S3 that
 * scripts/test.sh starts.
 */
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { prepareDataset } from '../lib/data/prepare.js';
import { synthesize } from '../lib/data/synth.js';
import { ArtifactCheckpointStore, checkpointName, type CheckpointRef } from '../lib/train/checkpoint.js';
import { runStage } from '../lib/train/stages.js';
import { readSafetensors, writeSafetensors } from '../lib/tensors/safetensors.js';
import { repoRoot, runLea } from './helpers/lea.js';
import { testStore, uniqueKey } from './helpers/store.js';

let work: string;
let dataDir: string;
const config = join(repoRoot, 'configs/smoke.yaml');
// 40 steps with a checkpoint every 20; warmup 4 so both halves see a changing learning rate
const overrides = (stage: 'fmriAe' | 'maskgit') => [
  `training.${stage}.iterations=40`,
  `training.${stage}.warmup=4`,
  `training.${stage}.checkpointEvery=20`,
  'training.fmriAe.initFrom=none',
];
const setFlags = (sets: string[]) => sets.flatMap((s) => ['--set', s]);

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'lea-resume-'));
  await synthesize({ format: 'god', scale: 'tiny', seed: 1, out: join(work, 'raw') });
  dataDir = join(work, 'prepared');
  await prepareDataset({ dataset: 'god', path: join(work, 'raw'), subject: 'sbj_1', out: dataDir });
});

after(() => rmSync(work, { recursive: true, force: true }));

function lea(stage: string, out: string, sets: string[], ...extra: string[]): ReturnType<typeof runLea> {
  return runLea([
    'train',
    stage,
    '--config',
    config,
    '--data',
    dataDir,
    '--out',
    out,
    ...setFlags(sets),
    ...extra,
  ]);
}

function ok(r: ReturnType<typeof runLea>): string {
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

for (const [stage, key] of [
  ['fmri-ae', 'fmriAe'],
  ['maskgit', 'maskgit'],
] as const) {
  test(`${stage}: 40 steps straight equal 20 steps + checkpoint + 20 steps in a new process, bit for bit`, () => {
    const a = join(work, `${stage}-straight`);
    const b = join(work, `${stage}-resumed`);
    if (stage === 'maskgit') {
      ok(lea('tokenizer', a, []));
      mkdirSync(join(b, 'tokenizer'), { recursive: true });
      copyFileSync(join(a, 'tokenizer', 'model.safetensors'), join(b, 'tokenizer', 'model.safetensors'));
    }
    const sets = overrides(key);
    ok(lea(stage, a, sets));
    assert.match(ok(lea(stage, b, sets, '--until', '20')), /20 steps from scratch to step 20/);
    assert.match(ok(lea(stage, b, sets, '--resume')), /20 steps resumed at step 20 to step 40/);
    for (const file of [
      'model.safetensors',
      join('checkpoints', checkpointName(40), 'model.safetensors'),
      join('checkpoints', checkpointName(40), 'train-state.safetensors'),
    ]) {
      assert.ok(
        readFileSync(join(a, stage, file)).equals(readFileSync(join(b, stage, file))),
        `${stage}/${file} differs`,
      );
    }
    // and the halfway checkpoints agree too (the straight run wrote one at step 20 as well)
    const half = join('checkpoints', checkpointName(20), 'train-state.safetensors');
    assert.ok(readFileSync(join(a, stage, half)).equals(readFileSync(join(b, stage, half))));
  });
}

test('a checkpoint in the earlier format (lea-checkpoint/1) resumes as stored, with a notice on rounding', async () => {
  // the resumed run's step-20 checkpoint, alone in a new folder and marked as written by the earlier code
  const out = join(work, 'fmri-ae-earlier');
  const name = join('checkpoints', checkpointName(20));
  cpSync(join(work, 'fmri-ae-resumed', 'fmri-ae', name), join(out, 'fmri-ae', name), { recursive: true });
  const modelPath = join(out, 'fmri-ae', name, 'model.safetensors');
  const { tensors, metadata } = await readSafetensors(modelPath);
  await writeSafetensors(modelPath, tensors, { ...metadata, format: 'lea-checkpoint/1' });
  const r = lea('fmri-ae', out, overrides('fmriAe'), '--resume');
  assert.match(ok(r), /20 steps resumed at step 20 to step 40/);
  assert.match(r.stderr, /lea-checkpoint\/1.*float rounding/);
  const straight = join(work, 'fmri-ae-straight', 'fmri-ae', 'model.safetensors');
  assert.ok(readFileSync(join(out, 'fmri-ae', 'model.safetensors')).equals(readFileSync(straight)));
});

test('a checkpoint of another model config is refused naming the tensor; a fresh start over checkpoints is refused', () => {
  const out = join(work, 'fmri-ae-straight');
  const other = lea('fmri-ae', out, [...overrides('fmriAe'), 'models.fmriAe.width=32'], '--resume');
  assert.equal(other.code, 2, other.stderr);
  assert.match(
    other.stderr,
    /tensor 'patch_embed\.layers\.0\.1\.weight' has shape \[40, 64\] but the model's is \[40, 32\]/,
  );
  const fresh = lea('fmri-ae', out, overrides('fmriAe'));
  assert.equal(fresh.code, 2, fresh.stderr);
  assert.match(fresh.stderr, /already holds a checkpoint \(step 40\).*--resume/);
  const badFlag = lea('fmri-ae', out, [], '--until', 'ten');
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--until/);
  const badStage = runLea(['train', 'clip', '--config', config]);
  assert.equal(badStage.code, 2);
  assert.match(badStage.stderr, /mae, fmri-ae, tokenizer, maskgit/);
});

test("checkpoints in the artifact store: one artifact per checkpoint under the caller's key, exact resume", async () => {
  await initCompute();
  const loaded = loadExperimentConfig(config, overrides('fmriAe'));
  assert.equal(loaded.pipeline, 'reproduction');
  const cfg = loaded as ReproductionConfig;
  const straight = join(work, 'artifact-straight');
  await runStage('fmri-ae', cfg, { dataDir, outDir: straight });

  const store = testStore();
  try {
    const prefix = uniqueKey('checkpoints/fmri-ae');
    const refs: CheckpointRef[] = [];
    const resumed = join(work, 'artifact-resumed');
    const first = await runStage('fmri-ae', cfg, {
      dataDir,
      outDir: resumed,
      until: 20,
      store: new ArtifactCheckpointStore(store, prefix),
      onCheckpoint: (ref) => {
        refs.push(ref);
      },
    });
    assert.equal(first.training?.step, 20);
    assert.deepEqual(await store.list(`${prefix}/`), [`${prefix}/${checkpointName(20)}`]);
    assert.equal(refs[0]?.artifact?.key, `${prefix}/${checkpointName(20)}`);
    assert.match(refs[0]?.artifact?.manifestSha256 ?? '', /^[0-9a-f]{64}$/);
    const manifest = await store.require(refs[0]?.artifact ?? '');
    assert.deepEqual(
      manifest.files.map((f) => f.path),
      ['model.safetensors', 'train-state.safetensors'],
    );
    assert.equal(manifest.meta.step, 20);
    assert.equal(manifest.meta.stage, 'fmri-ae');

    // a new trainer (fresh model, fresh store object) finds the checkpoint by its key and continues
    const second = await runStage('fmri-ae', cfg, {
      dataDir,
      outDir: resumed,
      resume: true,
      store: new ArtifactCheckpointStore(store, prefix),
    });
    assert.equal(second.training?.resumedFrom?.step, 20);
    assert.equal(second.training?.step, 40);
    // the checkpoint carries the loss history, so the resumed trainer reports every step's loss
    assert.deepEqual(second.training?.earlierLosses, first.training?.losses);
    assert.equal(second.training?.earlierLosses.length, 20);
    assert.ok(
      readFileSync(join(straight, 'fmri-ae', 'model.safetensors')).equals(
        readFileSync(join(resumed, 'fmri-ae', 'model.safetensors')),
      ),
    );
    assert.deepEqual(
      await store.list(`${prefix}/`),
      [20, 40].map((s) => `${prefix}/${checkpointName(s)}`),
    );
  } finally {
    store.s3.destroy();
  }
});
