/**
 * The Workflow Run RO-Crate of a hand-made run (no servers), read back by the `rocrate` Python package: the
 * profiles, every stage as a step, a tool run and a ControlAction, every file with its hash, the weights'
 * source, the metrics with their definitions and intervals, and the files `--with-files` carries, byte-exact.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  PROFILES,
  buildRoCrate,
  writeCrate,
  type ArtifactDescription,
  type RunDescription,
  type StageDescription,
} from '../lib/provenance/ro-crate.js';
import type { WeightsRecord } from '../lib/weights/import.js';
import { readCrate, type CrateReading } from './helpers/ro-crate.js';

const bytesOf = (key: string, path: string) => Buffer.from(`${key}/${path}`);
const artifact = (key: string, paths: string[], weights?: WeightsRecord): ArtifactDescription => ({
  key,
  files: paths.map((path) => ({
    path,
    size: bytesOf(key, path).length,
    sha256: createHash('sha256').update(bytesOf(key, path)).digest('hex'),
  })),
  ...(weights ? { weights } : {}),
});

const clipSource = { file: 'ViT-B-32.pt', sha256: 'c'.repeat(64), size: 350_000_000, format: 'torch' };
const clip = artifact('weights/clip', ['model.safetensors'], {
  source: clipSource,
  name: 'clip',
  kind: 'clip-vit',
} as WeightsRecord);
const data = artifact('cache/data/k1', ['train.npy', 'test.npy']);
const features = artifact('cache/features/k2', ['features.npy']);
const metricsOut = artifact('cache/metrics/k3', ['metrics.json', 'scores.json']);
const report = artifact('runs/r1/report', ['index.html']);

const stage = (s: Partial<StageDescription> & Pick<StageDescription, 'name' | 'impl'>): StageDescription => ({
  needs: {},
  config: { size: 1 },
  status: 'completed',
  cached: false,
  startedAt: '2026-01-01T00:00:01.000Z',
  finishedAt: '2026-01-01T00:00:02.000Z',
  error: null,
  inputs: {},
  output: null,
  implVersion: '1',
  compute: {
    choice: 'cpu',
    backend: 'cpu',
    device: 'cpu',
    threads: 2,
    versions: { 'tfjs-core': '4.22.0' },
    settings: { TF_NUM_INTRAOP_THREADS: '2' },
  },
  ...s,
});

const run: RunDescription = {
  runId: 'r1',
  config: 'configs/smoke.yaml',
  status: 'completed',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:01:00.000Z',
  codeVersion: 'abc123',
  metricsStage: 'metrics',
  stages: [
    stage({ name: 'data', impl: 'data', output: data, cached: true, status: 'cached', computedBy: 'r0' }),
    stage({
      name: 'features',
      impl: 'clip-features',
      needs: { data: 'data' },
      weights: { clip: 'clip' },
      inputs: { data, clip },
      output: features,
    }),
    stage({
      name: 'metrics',
      impl: 'metrics',
      needs: { features: 'features' },
      inputs: { features },
      output: metricsOut,
    }),
  ],
  metrics: { 'decode.twoway': 0.9, 'encode.pearson': 0.5 },
  definitions: {
    'decode.twoway': { definition: '2-way identification', paper: true },
    'encode.pearson': { definition: 'voxel r', paper: false },
  },
  intervals: { 'decode.twoway': [0.8, 0.95] },
  intervalMethod: 'percentile bootstrap',
  report,
};

async function exported(r: RunDescription, withFiles: boolean): Promise<CrateReading> {
  const dir = mkdtempSync(join(tmpdir(), 'lea-crate-'));
  const crate = buildRoCrate(r, {
    exportedAt: '2026-01-02T00:00:00.000Z',
    withFiles,
    record: { runId: r.runId },
  });
  await writeCrate(dir, crate, async (key, path) => bytesOf(key, path));
  return readCrate(dir);
}

test('a run exports as a Provenance Run Crate that rocrate reads back whole', async () => {
  const c = await exported(run, true);
  assert.deepEqual(c.conformsTo, Object.values(PROFILES));
  assert.equal(c.mainEntity.id, 'workflows/r1.json');
  for (const t of ['File', 'SoftwareSourceCode', 'ComputationalWorkflow', 'HowTo'])
    assert.ok(c.mainEntity.types.includes(t), t);
  assert.deepEqual(
    c.mainEntity.steps.map((s) => s.name),
    run.stages.map((s) => s.name),
  );
  // each stage: a tool run of the step's tool, orchestrated by a ControlAction the engine's action lists
  const actions = new Map(c.createActions.map((a) => [a.id, a]));
  for (const step of c.mainEntity.steps) {
    const control = c.controlActions.find((a) => a.instrument === step.id);
    assert.ok(control, `${step.name} has a ControlAction`);
    assert.equal(actions.get(control.object)?.instrument, step.workExample);
    assert.ok(c.organizeActions[0]!.object.includes(`${step.id}/control`));
  }
  assert.deepEqual(c.runActions, ['#r1/run']);
  assert.equal(c.organizeActions[0]!.result, '#r1/run');
  // every file read or written, with its hash; the weights' source among the files
  for (const a of [data, features, clip, metricsOut, report])
    for (const f of a.files) {
      const found = Object.values(c.files).filter((x) => x.sha256 === f.sha256);
      assert.equal(found.length, 1, `${a.key}/${f.path}`);
      assert.equal(found[0]!.contentSize, String(f.size));
    }
  assert.ok(Object.values(c.files).some((f) => f.sha256 === clipSource.sha256));
  const features_ = actions.get('#r1/action/features')!;
  assert.ok(features_.object.includes('#artifacts/weights/clip/model.safetensors'));
  assert.deepEqual(features_.result, ['#artifacts/cache/features/k2/features.npy']);
  // the small outputs are carried, byte for byte; the rest is described only
  const carried = Object.entries(c.files).filter(([, f]) => f.carried);
  assert.deepEqual(carried.map(([id]) => id).sort(), [
    'artifacts/cache/metrics/k3/metrics.json',
    'artifacts/cache/metrics/k3/scores.json',
    'artifacts/runs/r1/report/index.html',
    'record.json',
    'workflows/r1.json',
  ]);
  for (const [id, f] of carried) if (f.sha256) assert.equal(f.bytesSha256, f.sha256, id);
  assert.equal(c.runResults['decode.twoway']?.value, 0.9);
  assert.match(c.runResults['decode.twoway']?.description ?? '', /^2-way identification \(the paper's/);
  assert.equal(c.runResults['decode.twoway']?.minValue, 0.8);
  assert.equal(c.runResults['encode.pearson']?.minValue, undefined);
});

test('a failed run: its failed stage is a failed action, a stage that never ran a step without one', async () => {
  const failed: RunDescription = {
    ...run,
    status: 'failed',
    error: 'features: out of memory',
    metrics: {},
    report: null,
    stages: [
      run.stages[0]!,
      { ...run.stages[1]!, status: 'failed', error: 'out of memory', output: null },
      { ...run.stages[2]!, status: 'pending', inputs: {}, output: null, startedAt: null, finishedAt: null },
    ],
  };
  const c = await exported(failed, false);
  assert.equal(c.mainEntity.steps.length, 3);
  const byId = new Map(c.createActions.map((a) => [a.id, a]));
  assert.equal(byId.get('#r1/action/features')?.actionStatus, 'http://schema.org/FailedActionStatus');
  assert.equal(byId.get('#r1/action/metrics'), undefined);
  assert.equal(byId.get('#r1/run')?.actionStatus, 'http://schema.org/FailedActionStatus');
  const carried = Object.entries(c.files).filter(([, f]) => f.carried);
  assert.deepEqual(
    carried.map(([id]) => id),
    ['workflows/r1.json'],
  );
});

test('a suite nests its runs: each member workflow a step and part of the suite workflow', async () => {
  const member = (id: string): RunDescription => ({ ...run, runId: id, report: null });
  const suite: RunDescription = {
    ...run,
    runId: 'suite-1',
    stages: [],
    members: [member('a'), member('b')],
    sd: { 'decode.twoway': 0.01 },
    report: null,
  };
  const c = await exported(suite, false);
  assert.deepEqual(c.mainEntity.hasPart, ['workflows/a.json', 'workflows/b.json']);
  assert.deepEqual(
    c.mainEntity.steps.map((s) => s.workExample),
    ['workflows/a.json', 'workflows/b.json'],
  );
  const instruments = c.createActions.map((a) => a.instrument);
  for (const m of ['a', 'b'])
    for (const s of run.stages) assert.ok(instruments.includes(`#${m}/tool/${s.name}`), `${m} ${s.name}`);
  assert.ok(c.runResults['decode.twoway']);
});
