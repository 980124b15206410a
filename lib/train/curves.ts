/**
 * A trained stage's curves, step by step over its whole history (the steps before a resume come from the
 * checkpoint it resumed from): the loss (losses.json, the report's curve) and the TensorBoard scalars (loss,
 * learning rate, gradient norm, and steps/s of the attempt that finished the stage).
 */
import type { ScalarPoint } from '../report/tensorboard.js';
import { learningRate, type TrainResult, type TrainSettings } from './loop.js';
import type { StageResult } from './stage.js';

/** Seconds since the epoch at which each step of this attempt ended (index: step - startStep - 1). */
export type StepTimes = Float64Array;

/** Every step's loss: the gradient loop's whole history, or the k-means error per iteration. */
export function lossCurve(result: StageResult): { step: number; loss: number }[] {
  const t = result.training;
  if (!t) return (result.kmeans ?? []).map((loss, i) => ({ step: i, loss }));
  const first = t.startStep - t.earlierLosses.length + 1;
  return Array.from([...t.earlierLosses, ...t.losses], (loss, i) => ({ step: first + i, loss }));
}

/** Steps/s is reported over windows of this many steps. */
const RATE_WINDOW = 10;

/**
 * The TensorBoard scalars of a gradient loop. Steps restored from a checkpoint carry `restoredAt` (this attempt's
 * start) as their wall time: their own times were not recorded.
 */
export function trainingScalars(
  t: TrainResult,
  settings: TrainSettings,
  stepTimes: StepTimes,
  restoredAt: number,
): ScalarPoint[] {
  const points: ScalarPoint[] = [];
  const first = t.startStep - t.earlierLosses.length + 1;
  const losses = [...t.earlierLosses, ...t.losses];
  const norms = [...t.earlierGradNorms, ...t.gradNorms];
  losses.forEach((loss, i) => {
    const step = first + i;
    const wallTime = step > t.startStep ? stepTimes[step - t.startStep - 1]! : restoredAt;
    points.push({ tag: 'train/loss', step, value: loss, wallTime });
    points.push({ tag: 'train/learning_rate', step, value: learningRate(settings, step), wallTime });
    if (Number.isFinite(norms[i])) points.push({ tag: 'train/grad_norm', step, value: norms[i]!, wallTime });
  });
  // a compile (trace and first call) is its own scalar, and not part of the step rate of its window
  const compileSeconds = (c: TrainResult['compiled'][number]): number =>
    c.info.traceSeconds + c.info.firstCallSeconds;
  for (const c of t.compiled) {
    const wallTime = stepTimes[c.step - t.startStep - 1] ?? restoredAt;
    points.push({ tag: 'train/compile_seconds', step: c.step, value: compileSeconds(c), wallTime });
  }
  for (let k = RATE_WINDOW; k <= t.losses.length; k += RATE_WINDOW) {
    const inWindow = t.compiled.filter(
      (c) => c.step > t.startStep + k - RATE_WINDOW && c.step <= t.startStep + k,
    );
    const span =
      stepTimes[k - 1]! -
      (k > RATE_WINDOW ? stepTimes[k - RATE_WINDOW - 1]! : restoredAt) -
      inWindow.reduce((sum, c) => sum + compileSeconds(c), 0);
    points.push({
      tag: 'train/steps_per_second',
      step: t.startStep + k,
      value: RATE_WINDOW / Math.max(span, 1e-9),
      wallTime: stepTimes[k - 1]!,
    });
  }
  return points;
}
