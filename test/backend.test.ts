/** Backend selection (lib/compute/backend.ts): native by default, wasm when forced, errors when a forced one can't load. */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gpuVerdict, initCompute } from '../lib/compute/backend.js';
import { repoRoot } from './helpers/lea.js';

/** Runs initCompute() in a fresh process with LEA_TF_BACKEND set; returns its JSON report. */
function selectIn(backend: string): {
  provenance?: Record<string, unknown>;
  sum?: number[];
  error?: string;
  nativeLoaded?: boolean;
} {
  const code = `
    import * as tf from '@tensorflow/tfjs';
    import { createRequire } from 'node:module';
    import { initCompute } from './lib/compute/backend.ts';
    const nativeLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('tfjs-node'));
    try {
      const provenance = await initCompute();
      const sum = Array.from(tf.add(tf.tensor1d([1, 2]), 0.5).dataSync());
      console.log(JSON.stringify({ provenance, sum, nativeLoaded: nativeLoaded() }));
    } catch (err) {
      console.log(JSON.stringify({ error: err.name + ': ' + err.message }));
    }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: repoRoot,
    env: { ...process.env, LEA_TF_BACKEND: backend },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string);
}

test('default selection uses the native TensorFlow backend and reports it', async () => {
  delete process.env.LEA_TF_BACKEND;
  const p = await initCompute();
  assert.equal(p.backend, 'tensorflow');
  assert.equal(tf.getBackend(), 'tensorflow');
  assert.equal(
    p.choice,
    'tensorflow',
    'the GPU package is not installed here, so the native CPU one is chosen',
  );
  assert.equal(p.device, 'cpu');
  assert.match(p.versions.libtensorflow ?? '', /^2\.\d+\.\d+/);
  assert.equal(p.versions['@tensorflow/tfjs-node'], '4.22.0');
  assert.ok(p.threads >= 1);
  assert.strictEqual(await initCompute(), p, 'selected once');
  assert.deepEqual(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()), [11]);
});

test('LEA_TF_BACKEND=wasm runs on wasm without loading the native addon', () => {
  const r = selectIn('wasm');
  assert.equal(r.error, undefined);
  assert.equal(r.provenance?.backend, 'wasm');
  assert.equal(r.provenance?.choice, 'wasm');
  assert.deepEqual(r.sum, [1.5, 2.5]);
  assert.equal(r.nativeLoaded, false);
});

test('a forced backend that cannot load, or an unknown name, is a BadInputError naming LEA_TF_BACKEND', () => {
  const gpu = selectIn('tensorflow-gpu');
  assert.match(gpu.error ?? '', /^BadInputError: LEA_TF_BACKEND=tensorflow-gpu cannot be loaded/);
  const bogus = selectIn('cuda');
  assert.match(
    bogus.error ?? '',
    /^BadInputError: LEA_TF_BACKEND=cuda is not one of tensorflow-gpu, tensorflow, wasm, cpu/,
  );
});

test('tensorflow-gpu decision: skipped with one line without a GPU, an error when forced, used when found', () => {
  const none = { devices: [] };
  const driver = 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024';
  const noDevice = { driver, devices: [] };
  const gpu = { driver, devices: ['/dev/nvidia0'] };

  // No driver or no device node: decided before loading anything.
  const skip = gpuVerdict({ forced: false, probe: none });
  assert.equal(skip.action, 'skip');
  assert.equal(
    skip.message,
    'lea: tensorflow-gpu is installed but found no GPU ' +
      '(no NVIDIA driver: /proc/driver/nvidia/version is absent); using the CPU',
  );
  assert.deepEqual(gpuVerdict({ forced: true, probe: none }), {
    action: 'error',
    reason: 'no GPU: no NVIDIA driver: /proc/driver/nvidia/version is absent',
  });
  const container = gpuVerdict({ forced: false, probe: noDevice });
  assert.equal(container.action, 'skip');
  assert.match(container.reason ?? '', /^NVIDIA driver 550\.54\.15 but no \/dev\/nvidia<N> device here$/);
  assert.equal(gpuVerdict({ forced: true, probe: noDevice }).action, 'error');

  // Driver and device: load, then TensorFlow's device list decides.
  for (const forced of [false, true]) {
    assert.deepEqual(gpuVerdict({ forced, probe: gpu }), { action: 'load' });
    assert.deepEqual(gpuVerdict({ forced, probe: gpu, tfFoundGpu: true }), { action: 'use' });
  }
  const cpu = gpuVerdict({ forced: false, probe: gpu, tfFoundGpu: false });
  assert.equal(cpu.action, 'cpu');
  assert.match(
    cpu.message ?? '',
    /^lea: tensorflow-gpu loaded but found no GPU \(TensorFlow lists no GPU device/,
  );
  assert.match(cpu.message ?? '', /; using the CPU$/);
  assert.match(
    gpuVerdict({ forced: true, probe: gpu, tfFoundGpu: false }).reason ?? '',
    /^no GPU: TensorFlow/,
  );
});

test(
  'default selection on a machine without a GPU says so in one line and uses the native CPU backend',
  {
    skip: existsSync('/proc/driver/nvidia/version') && 'this machine has an NVIDIA driver',
  },
  () => {
    const code = `
    import { initCompute } from './lib/compute/backend.ts';
    const p = await initCompute();
    console.log(JSON.stringify({ choice: p.choice, device: p.device }));`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.LEA_TF_BACKEND;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: repoRoot,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop() as string), {
      choice: 'tensorflow',
      device: 'cpu',
    });
    const gpuInstalled = existsSync(join(repoRoot, 'node_modules/@tensorflow/tfjs-node-gpu/package.json'));
    if (gpuInstalled && !existsSync('/proc/driver/nvidia/version')) {
      // `npm run setup:gpu` was run here: the package is present but skipped before it loads.
      assert.match(
        r.stderr,
        /^lea: tensorflow-gpu is installed but found no GPU \(no NVIDIA driver: .*\); using the CPU$/m,
      );
    }
    assert.doesNotMatch(r.stderr, /did not load/);
  },
);
