/**
 * Backend kernel calls of a function (issue 21): what a change does to dispatch, which dominates small models,
 * read without a profiler. tf.profile records one entry per engine dispatch, and also one for each tf.customGrad
 * op under its scope's name, though such an op runs no kernel of its own (its forward's kernels have entries of
 * their own): entries that name no kernel registered for the backend are therefore left out. Work a backend does
 * inside one kernel is one call.
 */
import * as tf from '@tensorflow/tfjs';
import type { Params } from '../lib/models/layers.js';
import { lossAndGrads, type AdamW } from '../lib/train/adamw.js';
import { trainingStep } from '../lib/train/step.js';

export interface KernelCount {
  total: number;
  /** Calls per kernel name, most called first. */
  byName: Record<string, number>;
}

export async function countKernels(fn: () => void): Promise<KernelCount> {
  const backend = tf.getBackend();
  const { kernels } = await tf.profile(() => {
    fn();
  });
  const counts = new Map<string, number>();
  for (const { name } of kernels)
    if (tf.getKernel(name, backend)) counts.set(name, (counts.get(name) ?? 0) + 1);
  const byName = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return { total: byName.reduce((n, [, c]) => n + c, 0), byName: Object.fromEntries(byName) };
}

/**
 * Ops `fn` dispatches through the native binding (its executeOp calls, by op name): what a compiled step's
 * dispatch is, since its one function call runs outside the tfjs engine that tf.profile watches.
 */
export function countDispatches(fn: () => void): KernelCount {
  const backend = tf.backend() as unknown as {
    binding: { executeOp: (name: string, ...rest: unknown[]) => unknown };
  };
  const { binding } = backend;
  const counts = new Map<string, number>();
  // the addon's exports are read-only: a counting stand-in for the duration of the call
  const counting = Object.create(binding) as typeof binding;
  Object.defineProperty(counting, 'executeOp', {
    value: (name: string, ...rest: unknown[]) => {
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return binding.executeOp.call(binding, name, ...rest);
    },
  });
  backend.binding = counting;
  try {
    fn();
  } finally {
    backend.binding = binding;
  }
  const byName = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return { total: byName.reduce((n, [, c]) => n + c, 0), byName: Object.fromEntries(byName) };
}

/** 'Name count' of the `n` most called kernels. */
export function topKernels(count: KernelCount, n: number): string {
  return Object.entries(count.byName)
    .slice(0, n)
    .map(([name, c]) => `${name} ${c}`)
    .join(', ');
}

/** Kernel calls of one training step (lib/train/loop.ts trainingStep), split by what runs them. */
export interface StepKernels {
  /** The loss alone, without gradients. */
  forward: number;
  /** Gradients: the loss under tf.variableGrads less the forward. */
  backward: number;
  /** Clipping and AdamW: the whole step less the loss and gradients. */
  update: number;
  step: KernelCount;
}

/**
 * Counts after one uncounted step: the first step also builds the constants and index tables that later steps
 * reuse (lib/models/transformer.ts caches them), and steady state is what a training run repeats.
 */
export async function countStep(params: Params, opt: AdamW, loss: () => tf.Scalar): Promise<StepKernels> {
  trainingStep(params, opt, loss);
  const forward = await countKernels(() => tf.tidy(loss).dispose());
  const withGrads = await countKernels(() =>
    tf.tidy(() => {
      lossAndGrads(params, loss);
    }),
  );
  const step = await countKernels(() => trainingStep(params, opt, loss));
  return {
    forward: forward.total,
    backward: withGrads.total - forward.total,
    update: step.total - withGrads.total,
    step,
  };
}
