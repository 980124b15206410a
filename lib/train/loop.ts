/**
 * The training loop every stage shares: seeded data order, AdamW (decoupled weight decay, global-norm
 * clipping; lib/train/adamw.ts) under linear warmup then linear (or cosine) decay, periodic checkpoints
 * through a CheckpointStore, and exact resume: a run continued from a checkpoint produces the same weights,
 * bit for bit, as one that never stopped (same backend and thread count), because the checkpoint holds the
 * weights, the moments, the step and the state of every random stream the loop and the loss draw from.
 */
import { Rng } from '../compute/rng.js';
import { yieldToEventLoop } from '../compute/event-loop.js';
import { BadInputError } from '../errors.js';
import type { CompileMode } from '../compute/compile-modes.js';
import type { Params } from '../models/layers.js';
import { AdamW } from './adamw.js';
import {
  CHECKPOINT_FORMAT,
  readCheckpointFiles,
  writeCheckpointFiles,
  type CheckpointMeta,
  type CheckpointRef,
  type CheckpointStore,
  type DataOrderState,
} from './checkpoint.js';
import { StepRunner, type CompileInfo, type TrainTask } from './step.js';

export interface TrainSettings {
  lr: number;
  batchSize: number;
  iterations: number;
  warmup: number;
  /** Decay after warmup: linear to zero (LEA's decay_type 'linear') or half-cosine (MinD-Vis's stage 0). */
  schedule: 'linear' | 'cosine';
  /** Global gradient-norm clip; 0 turns clipping off (the MaskGIT config's grad_clip 0.0). */
  clip: number;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  /** 'all' parameters (one torch.optim.AdamW group) or only 'matrices' (timm's add_weight_decay: no biases, no 1-D). */
  decayParams: 'all' | 'matrices';
  checkpointEvery: number;
}

export type { StepInputs, TrainTask } from './step.js';

export interface TrainProgress {
  stage: string;
  step: number;
  iterations: number;
  loss: number;
  lr: number;
  /** The global L2 norm of the step's gradient, before clipping. */
  gradNorm: number;
  /** Over this call's steps so far. */
  stepsPerSecond: number;
  etaSeconds: number;
  /** The step this call started from (a resumed checkpoint's, or 0). */
  startStep: number;
}

export interface TrainOptions {
  seed: number;
  store?: CheckpointStore;
  /** Continue from the store's latest checkpoint when there is one. */
  resume?: boolean;
  /** Stop after this step, writing a checkpoint there; the schedule still spans `iterations`. */
  until?: number;
  onProgress?: (p: TrainProgress) => void;
  /** After each checkpoint is stored (an activity heartbeats `ref`). */
  onCheckpoint?: (ref: CheckpointRef, meta: CheckpointMeta) => void | Promise<void>;
  /** Things worth telling the user (a resume with changed settings). */
  onNotice?: (message: string) => void;
  /** Checked after every step: an abort (a cancelled or timed-out activity) stops training there. */
  signal?: AbortSignal;
  /** How steps run (lib/train/step.ts; default eager): compiled where the backend can, else eagerly. */
  compile?: CompileMode;
  /** Once per compiled input shape, after its first call. */
  onCompiled?: (info: CompileInfo) => void;
}

export interface TrainResult {
  stage: string;
  /** Step reached. */
  step: number;
  /** Step this call started from (0, or the resumed checkpoint's). */
  startStep: number;
  /** Loss of each step this call ran. */
  losses: Float32Array;
  /** Losses of the steps before startStep, from the resumed checkpoint (the steps just before it). */
  earlierLosses: Float32Array;
  /** The gradient norm of each step this call ran, and of the steps before it (from the checkpoint). */
  gradNorms: Float32Array;
  earlierGradNorms: Float32Array;
  resumedFrom?: CheckpointRef;
  lastCheckpoint?: CheckpointRef;
  seconds: number;
  /** How the steps of this call ran (the requested mode, or eager where it could not). */
  compile: CompileMode;
  /** Each compile of this call (one per input shape) and the step whose first call it was. */
  compiled: { step: number; info: CompileInfo }[];
}

export const RNG_STREAMS = ['data-order', 'augment'] as const;

/**
 * Batches of example indices from a fresh seeded permutation every epoch; a batch that crosses an epoch's end
 * continues into the next permutation, so every batch is full and every example is seen once per epoch.
 */
export class DataOrder {
  private perm: Int32Array = new Int32Array(0);
  private cursor = 0;
  private epoch = 0;

  constructor(
    private readonly examples: number,
    readonly rng: Rng,
  ) {
    if (!Number.isInteger(examples) || examples < 1)
      throw new RangeError(`data order over ${examples} examples`);
  }

  next(size: number): Int32Array {
    const out = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      if (this.cursor === this.perm.length) {
        this.perm = this.rng.permutation(this.examples);
        this.cursor = 0;
        this.epoch += 1;
      }
      out[i] = this.perm[this.cursor++] as number;
    }
    return out;
  }

  getState(): DataOrderState {
    return { epoch: this.epoch, cursor: this.cursor, perm: this.perm.slice() };
  }

  setState(s: DataOrderState): void {
    if (s.perm.length !== 0 && s.perm.length !== this.examples) {
      throw new RangeError(
        `data order state permutes ${s.perm.length} examples, this data has ${this.examples}`,
      );
    }
    this.perm = s.perm.slice();
    this.cursor = s.cursor;
    this.epoch = s.epoch;
  }
}

/** Learning rate of update `step` (1-based): linear warmup to `lr` at step `warmup`, then decay towards 0. */
export function learningRate(s: TrainSettings, step: number): number {
  if (step <= s.warmup) return (s.lr * step) / s.warmup;
  // decay measured so the first post-warmup step has the full rate and the last a small positive one [U]
  const progress = (step - s.warmup - 1) / (s.iterations - s.warmup);
  return s.schedule === 'linear' ? s.lr * (1 - progress) : s.lr * 0.5 * (1 + Math.cos(Math.PI * progress));
}

function sameSettings(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The AdamW a stage's loop settings describe (rate, betas, decay and which parameters it applies to, clip). */
export function optimizerFor(params: Params, settings: TrainSettings): AdamW {
  return new AdamW(params, {
    lr: settings.lr,
    betas: settings.betas,
    eps: settings.eps,
    weightDecay: settings.weightDecay,
    ...(settings.clip > 0 ? { maxGradNorm: settings.clip } : {}),
    ...(settings.decayParams === 'matrices'
      ? { decays: (name: string) => (params.get(name)?.rank ?? 0) >= 2 && !name.endsWith('bias') }
      : {}),
  });
}

export async function train(
  task: TrainTask,
  settings: TrainSettings,
  opts: TrainOptions,
): Promise<TrainResult> {
  const { stage, params } = task;
  const rngs = {
    'data-order': new Rng(opts.seed, `${stage}/data-order`),
    augment: new Rng(opts.seed, `${stage}/augment`),
  };
  const order = new DataOrder(task.examples, rngs['data-order']);
  const opt = optimizerFor(params, settings);
  const compiled: TrainResult['compiled'] = [];
  const onCompiled = (info: CompileInfo): void => {
    compiled.push({ step: step + 1, info });
    opts.onNotice?.(
      `${stage}: steps compiled (${info.mode}): ${info.tracedOps} ops as one call; traced in ` +
        `${info.traceSeconds.toFixed(1)} s, first call ${info.firstCallSeconds.toFixed(1)} s`,
    );
    opts.onCompiled?.(info);
  };
  const runner = new StepRunner(task, opt, opts.compile ?? 'eager', opts.onNotice, onCompiled);
  const started = performance.now();
  let step = 0;
  let resumedFrom: CheckpointRef | undefined;
  let earlierLosses: Float32Array = new Float32Array(0);
  let earlierGradNorms: Float32Array = new Float32Array(0);
  let lastCheckpoint: CheckpointRef | undefined;
  try {
    const existing = await opts.store?.latest();
    if (existing && !opts.resume) {
      throw new BadInputError(
        `${stage}: ${opts.store?.description} already holds a checkpoint (step ${existing.step}); resume from it ` +
          '(lea train --resume) or train into an empty place',
      );
    }
    if (existing && opts.store) {
      resumedFrom = existing;
      const opened = await opts.store.open(existing);
      try {
        const { state, training, notice } = await readCheckpointFiles(opened.dir, params, stage, [
          ...RNG_STREAMS,
        ]);
        if (notice) opts.onNotice?.(`${stage}: ${notice}`);
        opt.importState(state.optimizer);
        for (const name of RNG_STREAMS)
          rngs[name].setState(state.rngs[name] as NonNullable<(typeof state.rngs)[string]>);
        order.setState(state.dataOrder);
        step = state.step;
        earlierLosses = state.losses ?? earlierLosses;
        // a checkpoint from before grad norms were recorded: NaN for its steps, so both histories align
        earlierGradNorms = state.gradNorms ?? new Float32Array(earlierLosses.length).fill(NaN);
        // checkpoints before compiled steps name no mode: theirs was eager; graph steps round as eager ones do
        const { compile: written = 'eager', ...writtenSettings } = training as { compile?: string };
        const rounding = (mode: string): string => (mode === 'xla' ? 'xla' : 'eager');
        if (!sameSettings(writtenSettings, settings)) {
          opts.onNotice?.(
            `${stage}: the training settings differ from the checkpoint's; the continuation is not the uninterrupted run`,
          );
        } else if (rounding(written) !== rounding(runner.mode)) {
          opts.onNotice?.(
            `${stage}: the checkpoint was written by ${written} steps and training continues with ${runner.mode} ` +
              'steps, whose float rounding differs: the continuation is not the uninterrupted run',
          );
        }
      } finally {
        await opened.release();
      }
    }
    const startStep = step;
    const end = Math.min(settings.iterations, opts.until ?? settings.iterations);
    const losses = new Float32Array(Math.max(0, end - startStep));
    const gradNorms = new Float32Array(losses.length);
    const save = async (loss: number): Promise<void> => {
      if (!opts.store) return;
      const dir = await opts.store.staging();
      await writeCheckpointFiles(
        dir,
        params,
        {
          step,
          optimizer: opt.exportState(),
          rngs: { 'data-order': rngs['data-order'].getState(), augment: rngs.augment.getState() },
          dataOrder: order.getState(),
          losses: concat(earlierLosses, losses.subarray(0, step - startStep)),
          gradNorms: concat(earlierGradNorms, gradNorms.subarray(0, step - startStep)),
        },
        { stage, model: task.model, training: { ...settings, compile: runner.mode } },
      );
      const meta: CheckpointMeta = {
        format: CHECKPOINT_FORMAT,
        stage,
        step,
        iterations: settings.iterations,
        loss,
      };
      lastCheckpoint = await opts.store.commit(dir, meta);
      await opts.onCheckpoint?.(lastCheckpoint, meta);
    };
    // another step's draws from copies of the streams, which are then put back: a compile's second trace
    const probe = (): { inputs: object; lr: number } => {
      const saved = { order: order.getState(), augment: rngs.augment.getState() };
      try {
        return {
          inputs: task.draw(order.next(settings.batchSize), rngs.augment),
          lr: learningRate(settings, step + 2),
        };
      } finally {
        order.setState(saved.order);
        rngs.augment.setState(saved.augment);
      }
    };
    while (step < end) {
      const batch = order.next(settings.batchSize);
      const lr = learningRate(settings, step + 1);
      const loss = runner.run(task.draw(batch, rngs.augment), lr, probe);
      if (!Number.isFinite(loss)) throw new Error(`${stage}: the loss is ${loss} at step ${step + 1}`);
      losses[step - startStep] = loss;
      const gradNorm = opt.lastGradNorm();
      gradNorms[step - startStep] = gradNorm;
      step += 1;
      const elapsed = (performance.now() - started) / 1000;
      const rate = (step - startStep) / Math.max(elapsed, 1e-9);
      opts.onProgress?.({
        stage,
        step,
        iterations: settings.iterations,
        loss,
        lr,
        gradNorm,
        stepsPerSecond: rate,
        etaSeconds: (end - step) / rate,
        startStep,
      });
      if (step % settings.checkpointEvery === 0 || step === end) await save(loss);
      await yieldToEventLoop(opts.signal);
    }
    return {
      stage,
      step,
      startStep,
      losses,
      earlierLosses,
      gradNorms,
      earlierGradNorms,
      seconds: (performance.now() - started) / 1000,
      compile: runner.mode,
      compiled,
      ...(resumedFrom ? { resumedFrom } : {}),
      ...(lastCheckpoint ? { lastCheckpoint } : {}),
    };
  } finally {
    opt.dispose();
  }
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
