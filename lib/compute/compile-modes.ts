/**
 * How a training step runs (lib/train/step.ts), the config's runtime.compile. No imports: the config schema
 * reads this, and workflows read the config.
 *  - xla: one TensorFlow function per step, compiled by XLA into fused kernels (other float rounding than eager;
 *    a compile of seconds to minutes per stage and input shape, then the fastest steps).
 *  - graph: one TensorFlow function per step, run by TensorFlow's executor on the same kernels as eager: the same
 *    results bit for bit (test/compiled-step.test.ts), without the per-op dispatch from JavaScript.
 *  - eager: op by op from JavaScript (the only mode of the wasm and cpu backends).
 */
export const COMPILE_MODES = ['xla', 'graph', 'eager'] as const;
export type CompileMode = (typeof COMPILE_MODES)[number];

/** graph: eager's numbers at a fraction of its dispatch cost, and no compile time (README: compiled steps). */
export const DEFAULT_COMPILE: CompileMode = 'graph';
