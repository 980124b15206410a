/**
 * A forward pass run many times at the same shapes (MaskGIT's logits, once per decoding step and row chunk) as one
 * graph-mode TensorFlow function per input shape, on the native backend with the patched addon (tf-function.ts):
 * one dispatch per pass instead of hundreds. Graph mode runs TensorFlow's own kernels on the graph eager runs op by
 * op, so the outputs equal eager's bit for bit (test/compiled-step.test.ts) and no stage's results change. The
 * parameters are arguments of the function, not constants: a paper model's would make a FunctionDef of gigabytes.
 * A new shape costs a warm-up and a traced eager pass before its first compiled call, so a pass that runs once per
 * chunk gains nothing and stays eager. Elsewhere, or where a forward cannot be compiled, the pass runs eagerly.
 */
import type * as tf from '@tensorflow/tfjs';
import { compileFunction, compiledModeFor, shapeKey, type CompiledFunction } from './tf-function.js';

export class CompiledForward {
  private readonly programs = new Map<string, CompiledFunction>();
  /** Why passes run eagerly, once they do. */
  private eagerBecause: string | undefined = compiledModeFor('graph').reason;

  constructor(
    /** What the forward reads besides its inputs: the model's parameters (read where the model reads them). */
    private readonly params: readonly tf.Tensor[],
    /** Pure: reads `inputs` and `params`, uploads nothing that differs between calls, returns new tensors. */
    private readonly forward: (inputs: tf.Tensor[]) => tf.Tensor[],
    private readonly label: string,
  ) {}

  /** forward(inputs), compiled for their shapes where it can be; the caller disposes inputs and outputs. */
  run(inputs: tf.Tensor[]): tf.Tensor[] {
    if (this.eagerBecause !== undefined) return this.forward(inputs);
    const key = shapeKey(inputs);
    let program = this.programs.get(key);
    if (!program) {
      const n = this.params.length;
      try {
        program = compileFunction((all) => this.forward(all.slice(n)), [[...this.params, ...inputs]], {
          mode: 'graph',
          label: this.label,
        });
      } catch (err) {
        this.eagerBecause = (err as Error).message;
        // correct, only slower: said once, on stderr, where the worker's log keeps it
        console.error(`lea: ${this.label} runs eagerly: ${this.eagerBecause}`);
        return this.forward(inputs);
      }
      this.programs.set(key, program);
    }
    return program.call([...this.params, ...inputs]);
  }
}
