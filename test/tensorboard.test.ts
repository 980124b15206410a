/**
 * TensorBoard event files, read back with TensorBoard's own EventAccumulator (test/oracles/tensorboard_events.py
 * in the oracle venv): every point's tag, step, float32 value and wall time; a resumed stage's curves have every
 * step exactly once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventFile, eventFileName, type ScalarPoint } from '../lib/report/tensorboard.js';
import { trainingScalars } from '../lib/train/curves.js';
import { learningRate, type TrainResult, type TrainSettings } from '../lib/train/loop.js';
import { readEvents } from './helpers/oracle.js';

const f32 = (v: number) => Math.fround(v);

test('an event file reads back in TensorBoard point for point', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-tb-'));
  const points: ScalarPoint[] = [
    { tag: 'train/loss', step: 1, value: 2.5, wallTime: 1_765_000_000.25 },
    { tag: 'train/loss', step: 300_000, value: -1e-7, wallTime: 1_765_000_100.5 },
    { tag: 'metrics/decode.twoway_pcc', step: 0, value: 0.9212121212121211, wallTime: 1_765_000_200 },
  ];
  writeFileSync(join(dir, eventFileName(1_765_000_000).split('/')[1]!), eventFile(points));
  const read = readEvents(dir);
  assert.deepEqual(Object.keys(read).sort(), ['metrics/decode.twoway_pcc', 'train/loss']);
  assert.deepEqual(read['train/loss'], [
    [1, 2.5, 1_765_000_000.25],
    [300_000, f32(-1e-7), 1_765_000_100.5],
  ]);
  assert.deepEqual(read['metrics/decode.twoway_pcc'], [[0, f32(0.9212121212121211), 1_765_000_200]]);
});

test('a resumed stage: loss, learning rate and gradient norm at every step once, steps/s of the last attempt', () => {
  const settings: TrainSettings = {
    lr: 1e-3,
    batchSize: 4,
    iterations: 30,
    warmup: 5,
    schedule: 'cosine',
    clip: 1,
    weightDecay: 0.01,
    betas: [0.9, 0.95],
    eps: 1e-8,
    decayParams: 'all',
    checkpointEvery: 10,
  };
  const range = (from: number, n: number) => Float32Array.from({ length: n }, (_, i) => from + i);
  // resumed at step 10 (the checkpoint carried steps 1-10), this attempt ran 11-30
  const result: TrainResult = {
    stage: 'fmri-ae',
    step: 30,
    startStep: 10,
    earlierLosses: range(1, 10),
    losses: range(11, 20),
    earlierGradNorms: range(101, 10),
    gradNorms: range(111, 20),
    seconds: 2,
    compile: 'graph',
    // the attempt's first step traced and compiled its program for 3 s
    compiled: [{ step: 11, info: { mode: 'graph', tracedOps: 600, traceSeconds: 1, firstCallSeconds: 2 } }],
  };
  const times = Float64Array.from({ length: 20 }, (_, i) => 1000 + 3 + 0.5 * (i + 1));
  const dir = mkdtempSync(join(tmpdir(), 'lea-tb-'));
  writeFileSync(
    join(dir, 'events.out.tfevents.1000.lea'),
    eventFile(trainingScalars(result, settings, times, 1000)),
  );
  const read = readEvents(dir);
  const steps = Array.from({ length: 30 }, (_, i) => i + 1);
  assert.deepEqual(
    read['train/loss']!.map((p) => [p[0], p[1]]),
    steps.map((s) => [s, s]),
  );
  assert.deepEqual(
    read['train/grad_norm']!.map((p) => [p[0], p[1]]),
    steps.map((s) => [s, 100 + s]),
  );
  assert.deepEqual(
    read['train/learning_rate']!.map((p) => [p[0], p[1]]),
    steps.map((s) => [s, f32(learningRate(settings, s))]),
  );
  assert.deepEqual(
    read['train/compile_seconds']!.map((p) => [p[0], p[1]]),
    [[11, 3]],
  );
  // two steps per second, over windows of 10 steps of this attempt, the compile not counted
  assert.deepEqual(
    read['train/steps_per_second']!.map((p) => [p[0], p[1]]),
    [
      [20, 2],
      [30, 2],
    ],
  );
});
