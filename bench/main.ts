/**
 * `npm run bench [-- --only ID,ID] [--rounds N]` (ids: matmul-512/1024/2048, step-small/medium/paper and their
 * compiled forms step-*-graph and step-*-xla,
 * tiny-ops, tiny-ops-floor, ridge, paper-dry-run, calibration, kernel-counts, fused-ops; a prefix such as `step` selects several):
 * TensorFlow.js (backend chosen by lib/compute/backend.ts) against independent references, measured side by side in one run: the
 * reference (numpy / PyTorch CPU, bench/reference/server.py) and ours alternate round by round, and the
 * figure reported is the ratio of medians (ours / reference time), with the ratio of best times beside
 * it, and our backend kernel calls per timed call (bench/count-kernels.ts). Prints a table and writes JSON to
 * bench/results/. Not part of the tests. The references live in .tools/bench-venv
 * (tools/requirements-bench.txt), installed here on first use. SCRIPTS run in processes of their own after the
 * cases.
 */
import * as tf from '@tensorflow/tfjs';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { encoderForward, initEncoder, type EncoderConfig } from '../lib/models/transformer.js';
import type { CompileMode } from '../lib/compute/compile-modes.js';
import { compiledModeFor } from '../lib/compute/tf-function.js';
import { AdamW, type AdamWConfig } from '../lib/train/adamw.js';
import type { TrainTask } from '../lib/train/loop.js';
import { StepRunner, type CompileInfo } from '../lib/train/step.js';
import { countDispatches, countKernels } from './count-kernels.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const venv = `${root}.tools/bench-venv`;
const requirements = `${root}tools/requirements-bench.txt`;

/** Same scheme as scripts/setup.sh's ensure_venv: a marker named after the requirements' hash. */
function ensureBenchVenv(): string {
  const mark = `${venv}/.installed-${createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 16)}`;
  const python = `${venv}/bin/python`;
  if (existsSync(mark)) return python;
  if (!existsSync(python)) execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
  console.error(`bench: installing ${requirements} into ${venv}`);
  execFileSync(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', requirements], {
    stdio: 'inherit',
  });
  for (const f of readdirSync(venv)) if (f.startsWith('.installed-')) rmSync(`${venv}/${f}`);
  writeFileSync(mark, '');
  return python;
}

/** The reference process: one JSON request per line, one JSON reply per line. */
class Reference {
  private readonly child;
  private readonly replies: AsyncIterableIterator<string>;

  constructor(python: string) {
    // OPENBLAS_CORETYPE/L2_SIZE are set on some hosts for old OpenBLAS builds and slow a current numpy.
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    this.child = spawn(python, [`${root}bench/reference/server.py`], {
      env,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.replies = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async request<T>(req: object): Promise<T> {
    this.child.stdin.write(`${JSON.stringify(req)}\n`);
    const { value, done } = await this.replies.next();
    if (done) throw new Error('reference process exited');
    const reply = JSON.parse(value) as T & { error?: string };
    if (reply.error) throw new Error(`reference: ${reply.error}`);
    return reply;
  }

  close(): void {
    this.child.stdin.end();
  }
}

interface Case {
  /** What --only selects by prefix ('step' selects every step case). */
  id: string;
  name: string;
  /** What the reference builds (bench/reference/server.py SETUPS). */
  reference: Record<string, unknown>;
  /** Builds our side; returns one timed call and a cleanup (and, compiled, the ops its one call replaced). */
  ours: () => { run: () => void; dispose: () => void; compiled?: () => CompileInfo | undefined };
  reps: number;
  warmup: number;
  /** 'time': ours/reference time (lower is better); 'throughput': reference/ours time as % of reference. */
  target: { kind: 'time' | 'throughput'; limit: number; text: string } | undefined;
  flops?: number;
  /** Why the case cannot run with the backend that loaded (undefined: it can). */
  available?: () => string | undefined;
}

const adamw: AdamWConfig = { lr: 1e-4, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

function matmulCase(n: number, target?: Case['target']): Case {
  return {
    id: `matmul-${n}`,
    name: `matmul ${n}`,
    reference: { kind: 'matmul', n },
    ours: () => {
      const rng = new Rng(0, 'bench-matmul');
      const a = tf.tensor2d(rng.fillNormal(new Float32Array(n * n)), [n, n]);
      const b = tf.tensor2d(rng.fillNormal(new Float32Array(n * n)), [n, n]);
      // TF eager on CPU executes synchronously, so the call's wall time is the compute.
      return { run: () => tf.matMul(a, b).dispose(), dispose: () => tf.dispose([a, b]) };
    },
    reps: n >= 2048 ? 3 : 10,
    warmup: 2,
    target,
    flops: 2 * n ** 3,
  };
}

/**
 * A pre-LN encoder's AdamW step (MSE to a fixed target, clipping), as lib/train/step.ts runs a stage's step in
 * `mode`: eager op by op, or one compiled function (graph, xla; native backend only).
 */
function stepCase(
  id: string,
  name: string,
  cfg: EncoderConfig,
  tokens: number,
  reps: number,
  warmup: number,
  target: Case['target'],
  mode: CompileMode = 'eager',
): Case {
  const batch = 8;
  return {
    id: mode === 'eager' ? id : `${id}-${mode}`,
    name: mode === 'eager' ? name : `${name} ${mode}`,
    reference: { kind: 'transformer', ...cfg, tokens, batch, ...adamw },
    ...(mode === 'eager' ? {} : { available: () => compiledModeFor(mode).reason }),
    ours: () => {
      const rng = new Rng(0, 'bench-step');
      const params = initEncoder(cfg, rng);
      const opt = new AdamW(params, adamw);
      const shape: [number, number, number] = [batch, tokens, cfg.width];
      const size = batch * tokens * cfg.width;
      const x = tf.tensor3d(rng.fillNormal(new Float32Array(size)), shape);
      const target3 = tf.tensor3d(rng.fillNormal(new Float32Array(size)), shape);
      // the runner disposes a step's inputs: clones share the data
      const task: TrainTask<{ x: tf.Tensor3D; y: tf.Tensor3D }> = {
        stage: name,
        params,
        examples: batch,
        model: cfg,
        draw: () => ({ x: tf.clone(x), y: tf.clone(target3) }),
        loss: (d) => tf.mean(tf.square(tf.sub(encoderForward(params, cfg, d.x), d.y))) as tf.Scalar,
      };
      let compiled: CompileInfo | undefined;
      const runner = new StepRunner(task, opt, mode, undefined, (info) => (compiled = info));
      const none = new Int32Array(0);
      const probe = () => ({ inputs: task.draw(none, rng), lr: adamw.lr });
      return {
        run: () => runner.run(task.draw(none, rng), adamw.lr, probe),
        dispose: () => {
          tf.dispose([x, target3, ...params.values()]);
          opt.dispose();
        },
        compiled: () => compiled,
      };
    },
    reps,
    warmup,
    target,
  };
}

/** 200 dependent adds of 4x4 tensors: the per-op dispatch cost. */
function tinyOpsCase(): Case {
  const ops = 200;
  return {
    id: 'tiny-ops',
    name: `${ops} tiny ops`,
    reference: { kind: 'tiny-ops', ops },
    ours: () => {
      const x = tf.ones([4, 4]);
      const run = () =>
        tf.tidy(() => {
          let y = x;
          for (let i = 0; i < ops; i++) y = tf.add(y, x);
        });
      return { run, dispose: () => x.dispose() };
    },
    reps: 20,
    warmup: 5,
    // issue 21's target, or the floor that tiny-ops-floor measures
    target: { kind: 'time', limit: 3, text: '<= 3x torch' },
  };
}

/** What tfjs-node's native binding needs to run one eager op (no tfjs engine around it). */
interface NativeBinding {
  TF_ATTR_TYPE: number;
  TF_FLOAT: number;
  executeOp(name: string, attrs: object[], inputIds: number[], outputs: number): { id: number }[];
  deleteTensor(id: number): void;
}

/**
 * The same 200 adds issued straight to libtensorflow's eager runtime through tfjs-node's binding: the floor that
 * dispatch through tfjs-node sets, whatever the tfjs code around the ops does. Only on the native backend.
 */
function tinyOpsFloorCase(): Case {
  const ops = 200;
  return {
    id: 'tiny-ops-floor',
    name: `${ops} tiny ops, floor`,
    reference: { kind: 'tiny-ops', ops },
    available: () => (tf.getBackend() === 'tensorflow' ? undefined : 'needs the native backend'),
    ours: () => {
      const backend = tf.backend() as unknown as {
        binding: NativeBinding;
        getInputTensorIds(tensors: tf.Tensor[]): number[];
      };
      const { binding } = backend;
      const x = tf.ones([4, 4]);
      const [xId] = backend.getInputTensorIds([x]) as [number];
      const attrs = [{ name: 'T', type: binding.TF_ATTR_TYPE, value: binding.TF_FLOAT }];
      const run = () => {
        let y = xId;
        for (let i = 0; i < ops; i++) {
          const [out] = binding.executeOp('AddV2', attrs, [y, xId], 1) as [{ id: number }];
          if (y !== xId) binding.deleteTensor(y);
          y = out.id;
        }
        binding.deleteTensor(y);
      };
      return { run, dispose: () => x.dispose() };
    },
    reps: 20,
    warmup: 5,
    target: undefined,
  };
}

const encoder = (depth: number, width: number, heads: number): EncoderConfig => ({
  depth,
  width,
  heads,
  mlpRatio: 1,
  eps: 1e-5,
});

function stepTarget(mode: CompileMode, eager: number, xla: number): Case['target'] {
  if (mode === 'graph') return undefined;
  const limit = mode === 'eager' ? eager : xla;
  return { kind: 'time', limit, text: `<= ${limit}x torch` };
}

const CASES: Case[] = [
  matmulCase(512),
  matmulCase(1024, { kind: 'throughput', limit: 0.6, text: '>= 60% of numpy' }),
  matmulCase(2048),
  // each step case eager (issue 21's targets) and compiled (issue 28's for XLA; graph has none: it is eager's
  // kernels without the dispatch, and its numbers)
  ...[
    (mode: CompileMode) =>
      stepCase('step-small', 'step d2 w64 t16', encoder(2, 64, 4), 16, 20, 5, stepTarget(mode, 2, 0.6), mode),
    (mode: CompileMode) =>
      stepCase(
        'step-medium',
        'step d4 w128 t32',
        encoder(4, 128, 4),
        32,
        10,
        3,
        stepTarget(mode, 2, 0.9),
        mode,
      ),
    // The paper's fMRI encoder (spec §2.1): 10-20 s a step, so one warm-up and few steps.
    (mode: CompileMode) =>
      stepCase(
        'step-paper',
        'step d24 w1024 t140',
        encoder(24, 1024, 16),
        140,
        1,
        1,
        stepTarget(mode, 1.1, 1),
        mode,
      ),
  ].flatMap((size) => (['eager', 'graph', 'xla'] as const).map(size)),
  tinyOpsCase(),
  tinyOpsFloorCase(),
];

const settle = () => new Promise((resolve) => setTimeout(resolve, 200));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function parseArgs(argv: string[]): { only: string[] | undefined; rounds: number } {
  let only: string[] | undefined;
  let rounds = 3;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--only') only = (argv[++i] ?? '').split(',').map((s) => s.trim().toLowerCase());
    else if (argv[i] === '--rounds') rounds = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]} (use --only ID,ID and --rounds N)`);
  }
  if (!(rounds >= 1)) throw new Error('--rounds must be >= 1');
  return { only, rounds };
}

function fmtTime(s: number): string {
  return s >= 1
    ? `${s.toFixed(2)} s`
    : s >= 1e-3
      ? `${(s * 1e3).toFixed(2)} ms`
      : `${(s * 1e6).toFixed(1)} µs`;
}

/** Benchmarks with references or servers of their own, each run by its file; `byDefault`: also without --only. */
const SCRIPTS = [
  // scikit-learn from the oracle venv, not this file's reference process (bench/ridge.ts says why)
  {
    id: 'ridge',
    file: 'bench/ridge.ts',
    args: (rounds: number) => ['--rounds', String(rounds)],
    byDefault: true,
  },
  // a seed suite of 20 decodes on the embedded servers: only when named
  { id: 'calibration', file: 'bench/calibration.ts', args: () => [], byDefault: false },
  // the paper models' kernel calls per training step, counted at reduced widths (~3 GB, 20 s): only when named
  { id: 'kernel-counts', file: 'bench/kernel-counts.ts', args: () => [], byDefault: false },
  // each fused op's step time against its plain twin's, compiled and eager (several minutes): only when named
  {
    id: 'fused-ops',
    file: 'bench/fused-ops.ts',
    args: (rounds: number) => ['--rounds', String(rounds)],
    byDefault: false,
  },
  // 10 GB of disk at its peak and about 6 minutes: only when named
  { id: 'paper-dry-run', file: 'bench/paper-dry-run.ts', args: () => [], byDefault: false },
];

async function main(): Promise<void> {
  const { only, rounds } = parseArgs(process.argv.slice(2));
  const selected = (id: string) => only?.some((o) => id.startsWith(o));
  const cases = CASES.filter((c) => !only || selected(c.id));
  const scripts = SCRIPTS.filter((s) => (only ? selected(s.id) : s.byDefault));
  if (cases.length + scripts.length === 0)
    throw new Error(`--only matches none of ${[...CASES, ...SCRIPTS].map((c) => c.id).join(', ')}`);
  if (cases.length) await runCases(cases, rounds);
  for (const s of scripts) {
    execFileSync(process.execPath, ['--import', 'tsx', `${root}${s.file}`, ...s.args(rounds)], {
      stdio: 'inherit',
    });
  }
}

async function runCases(cases: Case[], rounds: number): Promise<void> {
  const python = ensureBenchVenv();
  const provenance = await initCompute();
  const ref = new Reference(python);
  const refInfo = await ref.request<Record<string, unknown>>({ op: 'info' });
  const machine = {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
  };
  console.log(
    `cores ${machine.cores} (${machine.cpu}); ours: tfjs ${provenance.backend} backend, ${provenance.threads} threads` +
      `${provenance.versions.libtensorflow ? `, libtensorflow ${provenance.versions.libtensorflow}` : ''}` +
      `${Object.entries(provenance.settings)
        .map(([k, v]) => `, ${k}=${v}`)
        .join('')}; ` +
      `reference: numpy ${refInfo.numpy}, torch ${refInfo.torch} (${refInfo.torchThreads} threads)`,
  );

  const results = [];
  for (const [id, c] of cases.entries()) {
    const unavailable = c.available?.();
    if (unavailable) {
      console.log(`${c.name.padEnd(20)} skipped: ${unavailable}`);
      continue;
    }
    await ref.request({ op: 'setup', id, case: c.reference });
    const ours = c.ours();
    await ref.request({ op: 'time', id, reps: c.warmup });
    for (let i = 0; i < c.warmup; i++) ours.run();
    const refSec: number[] = [];
    const ourSec: number[] = [];
    for (let r = 0; r < rounds; r++) {
      // a pause before each side lets the other side's worker threads stop spinning and sleep
      await settle();
      refSec.push(...(await ref.request<{ seconds: number[] }>({ op: 'time', id, reps: c.reps })).seconds);
      await settle();
      for (let i = 0; i < c.reps; i++) {
        const t0 = performance.now();
        ours.run();
        ourSec.push((performance.now() - t0) / 1e3);
      }
    }
    // one more call, untimed: profiling adds bookkeeping to every kernel. A compiled step's one call runs
    // outside the engine tf.profile watches: its dispatches are counted at the binding.
    const compiled = ours.compiled?.();
    const kernels = compiled ? countDispatches(ours.run) : await countKernels(ours.run);
    ours.dispose();
    await ref.request({ op: 'drop', id });
    const [o, rf] = [median(ourSec), median(refSec)];
    const ratio = o / rf;
    // On a shared machine the best times estimate the undisturbed cost; OpenMP/BLAS references suffer
    // far more than TensorFlow's thread pool when another process takes a core.
    const bestRatio = Math.min(...ourSec) / Math.min(...refSec);
    const met =
      c.target === undefined
        ? undefined
        : c.target.kind === 'time'
          ? ratio <= c.target.limit
          : 1 / ratio >= c.target.limit;
    const row = {
      case: c.name,
      ours: o,
      reference: rf,
      ratio,
      bestRatio,
      ...(c.flops ? { oursGflops: c.flops / o / 1e9, referenceGflops: c.flops / rf / 1e9 } : {}),
      kernels: kernels.total,
      kernelsByName: kernels.byName,
      ...(compiled ? { compiled } : {}),
      target: c.target?.text,
      met,
      samples: { ours: ourSec, reference: refSec },
    };
    results.push(row);
    const extra = c.flops
      ? `  ${row.oursGflops?.toFixed(0)} vs ${row.referenceGflops?.toFixed(0)} GFLOP/s (${((100 * rf) / o).toFixed(0)}%)`
      : compiled
        ? `  (${compiled.tracedOps} ops traced; compile ${fmtTime(compiled.traceSeconds)} + first call ${fmtTime(compiled.firstCallSeconds)})`
        : '';
    console.log(
      `${c.name.padEnd(20)} ours ${fmtTime(o).padStart(9)}  ref ${fmtTime(rf).padStart(9)}  ` +
        `ratio ${ratio.toFixed(2).padStart(5)}x (best ${bestRatio.toFixed(2)}x)  ${String(kernels.total).padStart(5)} kernels${extra}` +
        `${c.target ? `  target ${c.target.text}: ${met ? 'met' : 'NOT met'}` : ''}`,
    );
  }
  ref.close();

  const dir = `${root}bench/results`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(file, JSON.stringify({ machine, provenance, reference: refInfo, rounds, results }, null, 2));
  console.log(`wrote ${file}`);
}

await main();
