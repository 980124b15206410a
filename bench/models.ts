/**
 * `node --import tsx bench/models.ts [--steps N] [--only ae|maskgit] [--no-reference]`: training steps per
 * second of the paper-size models on this machine (batch 8 as in the paper; one warm-up step, then N timed
 * steps of forward, backward, clipping and AdamW):
 *   ae       LEA's fMRI autoencoder for GOD sbj_1 (172 M parameters, 257 tokens, voxel dropout 0.25)
 *   maskgit  the MaskGIT transformer (173 M parameters, 257 positions, dropout 0.01, half the tokens masked)
 * Beside the autoencoder: the PyTorch reference of the compute benchmark (bench/reference/server.py, run from
 * .tools/bench-venv, which `npm run bench` installs) timing its 24 x 1024 pre-LN encoder at the same 257 tokens
 * and batch: the part that holds 151 M of the 172 M parameters. MaskGIT has no PyTorch reference there.
 * A standalone script: bench/main.ts has a fixed case list, no way to register cases from another file.
 * Prints a table and writes JSON to bench/results/. Memory: a paper-size step peaks at ~10-12 GB for each
 * model (activations of batch 8 x 257 tokens, gradients, AdamW moments and update temporaries), and the
 * process keeps what its allocator took: with less than ~24 GB free, run `--only ae` and `--only maskgit` as
 * separate processes.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { initCompute } from '../lib/compute/backend.js';
import { countParams } from '../lib/models/layers.js';
import { trainingStep } from '../lib/train/step.js';
import { paperAeConfig, paperMaskGitConfig } from '../test/helpers/paper.js';
import { aeStep, maskGitStep, type ModelStep } from './model-steps.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const BATCH = 8;
interface Row {
  model: string;
  parameters: number;
  batch: number;
  tokens: number;
  secondsPerStep: number[];
  stepsPerSecond: number;
  reference?: { what: string; secondsPerStep: number[]; stepsPerSecond: number };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Times `steps` training steps after one warm-up step; the model is disposed afterwards. */
function timeSteps(model: string, s: ModelStep, steps: number): Omit<Row, 'stepsPerSecond'> {
  try {
    trainingStep(s.params, s.opt, s.loss);
    const secondsPerStep: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      trainingStep(s.params, s.opt, s.loss);
      secondsPerStep.push((performance.now() - t0) / 1000);
    }
    return { model, parameters: countParams(s.params), batch: BATCH, tokens: s.tokens, secondsPerStep };
  } finally {
    s.dispose();
  }
}

const benchAe = (steps: number) =>
  timeSteps('fMRI autoencoder, GOD sbj_1', aeStep(paperAeConfig(), BATCH), steps);
const benchMaskGit = (steps: number) =>
  timeSteps('MaskGIT transformer', maskGitStep(paperMaskGitConfig(), BATCH), steps);

/** The PyTorch encoder step of bench/reference/server.py at the autoencoder's size, or undefined without its venv. */
async function referenceEncoderStep(steps: number): Promise<number[] | undefined> {
  const python = `${root}.tools/bench-venv/bin/python`;
  if (!existsSync(python)) return undefined;
  const child = spawn(python, [`${root}bench/reference/server.py`], { stdio: ['pipe', 'pipe', 'inherit'] });
  const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const ask = async <T>(req: object): Promise<T> => {
    child.stdin.write(`${JSON.stringify(req)}\n`);
    const { value, done } = await replies.next();
    if (done) throw new Error('reference process exited');
    return JSON.parse(value as string) as T;
  };
  const exited = new Promise((done) => child.once('exit', done));
  try {
    const transformer = {
      kind: 'transformer',
      depth: 24,
      width: 1024,
      heads: 16,
      mlpRatio: 1,
      eps: 1e-5,
      tokens: 257,
      batch: BATCH,
    };
    await ask({
      op: 'setup',
      id: 0,
      case: { ...transformer, lr: 5e-5, betas: [0.9, 0.95], weightDecay: 0.01, maxGradNorm: 0.1 },
    });
    await ask({ op: 'time', id: 0, reps: 1 });
    return (await ask<{ seconds: number[] }>({ op: 'time', id: 0, reps: steps })).seconds;
  } finally {
    child.stdin.end();
    await exited;
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let steps = 2;
  let only: string | undefined;
  let reference = true;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--steps') steps = Number(argv[++i]);
    else if (argv[i] === '--only') only = argv[++i];
    else if (argv[i] === '--no-reference') reference = false;
    else throw new Error(`unknown argument ${argv[i]} (use --steps N, --only ae|maskgit, --no-reference)`);
  }
  if (!Number.isInteger(steps) || steps < 1) throw new Error('--steps must be a positive integer');
  if (only !== undefined && only !== 'ae' && only !== 'maskgit')
    throw new Error('--only must be ae or maskgit');
  const provenance = await initCompute();
  const rows: Row[] = [];
  const add = (r: Omit<Row, 'stepsPerSecond'>, ref?: Row['reference']): void => {
    rows.push({ ...r, stepsPerSecond: 1 / median(r.secondsPerStep), ...(ref ? { reference: ref } : {}) });
  };
  if (only !== 'maskgit') {
    // the reference first, its process gone before our model is built: both at once need ~20 GB
    const ref = reference ? await referenceEncoderStep(steps) : undefined;
    const ae = benchAe(steps);
    add(
      ae,
      ref && {
        what: 'PyTorch 24x1024 pre-LN encoder step, 257 tokens, batch 8 (bench/reference/server.py)',
        secondsPerStep: ref,
        stepsPerSecond: 1 / median(ref),
      },
    );
  }
  if (only !== 'ae') add(benchMaskGit(steps));
  const machine = {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
  };
  console.log(
    `${machine.cores} cores (${machine.cpu}); tfjs ${provenance.backend} backend, ${provenance.threads} threads; ${steps} timed steps after 1 warm-up`,
  );
  for (const r of rows) {
    const ref = r.reference
      ? `; reference: ${median(r.reference.secondsPerStep).toFixed(2)} s/step (${r.reference.what})`
      : '';
    console.log(
      `${r.model.padEnd(28)} ${(r.parameters / 1e6).toFixed(1)} M params, batch ${r.batch} x ${r.tokens}: ${median(r.secondsPerStep).toFixed(2)} s/step = ${r.stepsPerSecond.toFixed(3)} steps/s${ref}`,
    );
  }
  const dir = `${root}bench/results`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/models-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ machine, provenance, steps, rows }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
