/**
 * One training update, eager or compiled. Eager: the task's loss, tfjs's backward, clipping and AdamW run op by op
 * (thousands of kernel dispatches a step at paper size). Compiled (runtime.compile xla or graph, native backends):
 * the same code is traced once per input shape into one TensorFlow function (lib/compute/tf-function.ts) whose
 * inputs are the parameters, the moments, the update's scalars and the step's draws, and whose outputs are the
 * loss, ‖g‖² and the new parameters and moments; each step is then one call. Both read the same model code.
 */
import * as tf from '@tensorflow/tfjs';
import type { CompileMode } from '../compute/compile-modes.js';
import { compileFunction, compiledModeFor, shapeKey, type CompiledFunction } from '../compute/tf-function.js';
import type { Params } from '../models/layers.js';
import { AdamW, lossAndGrads } from './adamw.js';
import type { Rng } from '../compute/rng.js';

/**
 * One update as train() runs it eagerly: loss, gradients, clipping and AdamW in one tidy, then the loss read back
 * (the step's one device sync); returns the loss. bench/ times and counts this same function.
 */
export function trainingStep(params: Params, opt: AdamW, loss: () => tf.Scalar, lr?: number): number {
  const lossTensor = tf.tidy(() => {
    const r = lossAndGrads(params, loss);
    opt.update(r.grads, lr);
    return r.loss;
  });
  const value = lossTensor.dataSync()[0] as number;
  lossTensor.dispose();
  return value;
}

/**
 * What one training step reads besides the parameters: the batch's data and every random draw, uploaded; a
 * record whose leaves are tensors (nested records and arrays allowed).
 */
export type StepInputs = object;

/**
 * One stage's model and loss, as the loop sees them. A step is split in two so that its tensor part can run as
 * one compiled function (lib/train/step.ts): `draw` is the host part, `loss` pure tensor code.
 */
export interface TrainTask<I extends StepInputs = StepInputs> {
  stage: string;
  params: Params;
  /** Examples the data order permutes (batches hold their indices). */
  examples: number;
  /** The batch's data and every random draw of the step (masks, dropout), from `rng` (the 'augment' stream). */
  draw(batch: Int32Array, rng: Rng): I;
  /** The loss of drawn inputs: tensor ops only (no draws, no reads back to JavaScript). */
  loss(inputs: I): tf.Scalar;
  /** The model's structure, stored with each checkpoint. */
  model: unknown;
}

/** The tensors of a step's inputs, depth first in key order: the compiled function's input layout. */
function leaves(x: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (x instanceof tf.Tensor) out.push(x);
  else if (Array.isArray(x)) for (const v of x) leaves(v, out);
  else if (x && typeof x === 'object') for (const v of Object.values(x)) leaves(v, out);
  return out;
}

/** `like` with its tensors replaced, in leaves() order, by `tensors`. */
function rebuild<T>(like: T, tensors: tf.Tensor[], at = { i: 0 }): T {
  if (like instanceof tf.Tensor) return tensors[at.i++] as T;
  if (Array.isArray(like)) return like.map((v) => rebuild(v, tensors, at)) as T;
  if (like && typeof like === 'object')
    return Object.fromEntries(Object.entries(like).map(([k, v]) => [k, rebuild(v, tensors, at)])) as T;
  return like;
}

/** What compiling a step cost, reported once per input shape. */
export interface CompileInfo {
  mode: 'xla' | 'graph';
  /** The ops the eager trace dispatched: what one call now replaces. */
  tracedOps: number;
  /** Both traces and building the function. */
  traceSeconds: number;
  /** The first call, which is where XLA compiles. */
  firstCallSeconds: number;
}

/** Another step's inputs and rate (the loop draws them from copies of its streams): the second trace's. */
export type Probe = () => { inputs: StepInputs; lr: number };

/** A step that cannot become one compiled function (StepRunner then runs it eagerly). */
class CompileError extends Error {}

export class StepRunner {
  private readonly programs = new Map<string, CompiledFunction>();
  /** The last compile's trace figures, completed by its first call. */
  private traced: Omit<CompileInfo, 'firstCallSeconds'> = { mode: 'xla', tracedOps: 0, traceSeconds: 0 };
  /** The mode steps run in: the requested one, or eager where this backend cannot compile. */
  mode: CompileMode;

  constructor(
    private readonly task: TrainTask,
    private readonly opt: AdamW,
    requested: CompileMode,
    private readonly onNotice?: (message: string) => void,
    private readonly onCompiled?: (info: CompileInfo) => void,
  ) {
    const { mode, reason } = compiledModeFor(requested);
    this.mode = mode;
    if (reason) onNotice?.(`${task.stage}: steps run eagerly (${requested} asked for): ${reason}`);
  }

  /**
   * One update on `inputs` (the task's draw for this step) at rate `lr`; returns the loss. Disposes `inputs`. A
   * step that cannot be compiled (an op XLA lacks, a value read back mid-step) runs eagerly from then on, with a
   * notice saying why: correct, only slower.
   */
  run(inputs: StepInputs, lr: number, probe: Probe): number {
    try {
      if (this.mode !== 'eager') {
        try {
          return this.compiled(inputs, lr, probe, this.mode);
        } catch (err) {
          if (!(err instanceof CompileError)) throw err;
          this.onNotice?.(
            `${this.task.stage}: steps run eagerly from step ${this.opt.step + 1}: ${err.message}`,
          );
          this.mode = 'eager';
        }
      }
      return trainingStep(this.task.params, this.opt, () => this.task.loss(inputs), lr);
    } finally {
      tf.dispose(leaves(inputs));
    }
  }

  private state(): tf.Tensor[] {
    const { m, v } = this.opt.moments();
    return [...this.task.params.values(), ...m, ...v];
  }

  private compiled(inputs: StepInputs, lr: number, probe: Probe, mode: 'xla' | 'graph'): number {
    const x = leaves(inputs);
    const key = shapeKey(x);
    const known = this.programs.get(key);
    const scalars = this.opt.stepScalars(lr);
    try {
      const program = known ?? this.compile(key, inputs, scalars, probe, mode);
      let out: tf.Tensor[];
      const started = performance.now();
      try {
        out = program.call([...this.state(), ...scalars, ...x]);
      } catch (err) {
        if (known) throw err;
        this.programs.delete(key);
        throw new CompileError(`its first call failed (${(err as Error).message.split('\n')[0]})`);
      }
      if (!known)
        this.onCompiled?.({ ...this.traced, firstCallSeconds: (performance.now() - started) / 1000 });
      const [loss, normSquared] = out as [tf.Scalar, tf.Scalar];
      const params = this.task.params.size;
      const groups = this.opt.moments().m.length;
      this.opt.commit({
        params: out.slice(2, 2 + params),
        m: out.slice(2 + params, 2 + params + groups),
        v: out.slice(2 + params + groups),
        normSquared,
      });
      const value = loss.dataSync()[0] as number;
      loss.dispose();
      return value;
    } finally {
      tf.dispose(scalars);
    }
  }

  private compile(
    key: string,
    inputs: StepInputs,
    scalars: tf.Scalar[],
    probe: Probe,
    mode: 'xla' | 'graph',
  ): CompiledFunction {
    const started = performance.now();
    const { params } = this.task;
    const state = this.state();
    // the function: parameters and moments (read where the model and the optimiser read them), the update's
    // scalars, the draws → loss, ‖g‖², new parameters (name order), new moments (per group)
    const step = (flat: tf.Tensor[]): tf.Tensor[] => {
      const s = flat.slice(state.length, state.length + scalars.length) as tf.Scalar[];
      const drawn = rebuild(inputs, flat.slice(state.length + scalars.length));
      const { loss, grads } = lossAndGrads(params, () => this.task.loss(drawn));
      const u = this.opt.next(grads, s);
      return [loss, u.normSquared, ...u.params, ...u.m, ...u.v];
    };
    const other = probe();
    const otherScalars = this.opt.stepScalars(other.lr, this.opt.step + 2);
    try {
      const program = compileFunction(
        step,
        [
          [...state, ...scalars, ...leaves(inputs)],
          [...state, ...otherScalars, ...leaves(other.inputs)],
        ],
        { mode, label: `${this.task.stage} training step` },
      );
      this.programs.set(key, program);
      this.traced = {
        mode,
        tracedOps: program.tracedOps,
        traceSeconds: (performance.now() - started) / 1000,
      };
      return program;
    } catch (err) {
      throw new CompileError((err as Error).message);
    } finally {
      tf.dispose([...otherScalars, ...leaves(other.inputs)]);
    }
  }
}
