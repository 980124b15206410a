/** Pure pipeline logic: cache keys, regression verdicts, and the stage modules' imports. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { canonicalJson, stageCacheKey } from '../lib/pipeline/cache.js';
import { groupCheckpoints } from '../lib/pipeline/gc.js';
import { describeAttempt } from '../lib/pipeline/run-record.js';
import { describeFailure, judge, loadBaseline, type Baseline } from '../lib/pipeline/regression.js';
import { repoRoot } from './helpers/lea.js';

const input = (sha: string) => ({ files: [{ path: 'a.npy', sha256: sha.repeat(64), size: 1 }] });

test('cache keys depend on config, inputs content and code version, not on key order', () => {
  const base = {
    stage: 'ridge',
    codeVersion: '1',
    config: { alpha: 500, intercept: false },
    inputs: { x: input('a') },
  };
  const k = stageCacheKey(base);
  assert.equal(stageCacheKey({ ...base, config: { intercept: false, alpha: 500 } }), k);
  assert.notEqual(stageCacheKey({ ...base, config: { alpha: 501, intercept: false } }), k);
  assert.notEqual(stageCacheKey({ ...base, inputs: { x: input('b') } }), k);
  assert.notEqual(stageCacheKey({ ...base, codeVersion: '2' }), k);
  assert.notEqual(stageCacheKey({ ...base, stage: 'decode' }), k);
  assert.equal(canonicalJson({ b: [1, { d: 1, c: 2 }], a: undefined }), '{"b":[1,{"c":2,"d":1}]}');
});

const baseline: Baseline = {
  name: 'b',
  source: 'test',
  alpha: 0.01,
  correction: 'holm',
  resamples: 10_000,
  metrics: {
    'decode.nway5': { value: 0.6, tolerance: 0.05, better: 'higher' },
    'decode.fid': { value: 10, tolerance: 1, better: 'lower' },
    'encode.pearson': { value: null, tolerance: 0.1, better: 'higher' },
  },
};

test('a run within tolerance passes; a worse metric regresses and is named', () => {
  const ok = judge(
    { metrics: { 'decode.nway5': 0.56, 'decode.fid': 10.9, 'encode.pearson': 0.2 } },
    baseline,
  );
  assert.equal(ok.verdict, 'pass');
  assert.deepEqual(ok.unfilled, ['encode.pearson']);
  const better = judge({ metrics: { 'decode.nway5': 0.9, 'decode.fid': 2 } }, baseline);
  assert.equal(better.verdict, 'pass', 'improvement is not a regression');
  const bad = judge({ metrics: { 'decode.nway5': 0.5, 'decode.fid': 10 } }, baseline);
  assert.equal(bad.verdict, 'regressed');
  assert.equal(bad.failures.length, 1);
  assert.equal(bad.failures[0]!.metric, 'decode.nway5');
  assert.match(describeFailure(bad.failures[0]!), /decode\.nway5: 0\.5000 vs baseline 0\.6000 \(-0\.100/);
  const missing = judge({ metrics: { 'decode.nway5': 0.6 } }, baseline);
  assert.equal(missing.verdict, 'regressed');
  assert.match(describeFailure(missing.failures[0]!), /decode\.fid: missing/);
});

test('the last good run is compared with the same tolerances', () => {
  const v = judge({ metrics: { 'decode.nway5': 0.62, 'decode.fid': 10, 'encode.pearson': 0.1 } }, baseline, {
    runId: 'prev',
    pinned: false,
    metrics: { 'decode.nway5': 0.7, 'decode.fid': 10, 'encode.pearson': 0.3 },
  });
  assert.equal(v.verdict, 'regressed');
  assert.deepEqual(
    v.failures.map((f) => [f.metric, f.against]),
    [
      ['decode.nway5', 'last-good'],
      ['encode.pearson', 'last-good'],
    ],
  );
  assert.equal(v.lastGoodRunId, 'prev');
});

test('a malformed baseline file is named with its field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-base-'));
  const f = join(dir, 'b.yaml');
  writeFileSync(f, 'name: x\nsource: y\nmetrics:\n  m: { value: 1, tolerance: -1 }\n');
  assert.throws(() => loadBaseline(f), /b\.yaml: invalid baseline: metrics\.m\.tolerance/);
  writeFileSync(f, 'name: x\nsource: y\nmetrics:\n  m: { value: 1, tolerance: 0.1, better: up }\n');
  assert.throws(() => loadBaseline(f), /metrics\.m\.better/);
  writeFileSync(f, 'name: x\nsource: y\nmetrics:\n  m: { value: 1, tolerance: 0.1 }\n');
  assert.equal(loadBaseline(f).metrics.m!.better, 'either');
});

test('each stage module imports on its own (no circle through the stage runner)', () => {
  // A fresh process per module: in this one, an earlier import would hide the order a circle depends on.
  for (const stage of ['alignment', 'data', 'metrics', 'training']) {
    const code = `const m = await import('./activities/stages/${stage}.ts'); console.log(Object.keys(m).length);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: repoRoot,
      encoding: 'utf8',
    });
    assert.ok(Number(out) > 0, `${stage}: ${out}`);
  }
});

test('checkpoints group by stage (a forced run apart), oldest step first; attempts print as one line each', () => {
  const keys = [
    'checkpoints/fmri-ae/k1/step-000000200',
    'checkpoints/fmri-ae/k1/step-000000100',
    'checkpoints/fmri-ae/k1/forced-run-a/step-000000100',
    'checkpoints/other/not-a-step',
  ];
  assert.deepEqual(groupCheckpoints(keys), [
    { prefix: 'checkpoints/fmri-ae/k1', impl: 'fmri-ae', cacheKey: 'k1', keys: [keys[1], keys[0]] },
    {
      prefix: 'checkpoints/fmri-ae/k1/forced-run-a',
      impl: 'fmri-ae',
      cacheKey: 'k1',
      forcedRun: 'run-a',
      keys: [keys[2]],
    },
  ]);
  const a = { attempt: 2, worker: '7@host', startedAt: 'T1', endedAt: 'T2', ended: 'completed' };
  assert.equal(
    describeAttempt({ ...a, resumedFromStep: 100, step: 500 }),
    'attempt 2 on 7@host: T1 to T2, steps 100-500 (resumed), completed',
  );
  assert.equal(describeAttempt(a), 'attempt 2 on 7@host: T1 to T2, completed');
});
