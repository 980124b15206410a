/**
 * A fused op: a forward over a named record of tensors (`{x, norm1: {weight, bias}, ...}`) with a hand-written
 * backward that returns one gradient per input under the same names. tf.customGrad takes and returns tensors
 * by position; this is the one place that flattens a record into that list and back, in the record's own order.
 * Also stopGradient, the one other gradient written by hand (zero).
 */
import * as tf from '@tensorflow/tfjs';

/** One gradient per input tensor, in the inputs' shape of record. */
export type GradTree<I> = I extends tf.Tensor ? tf.Tensor : { [K in keyof I]: GradTree<I[K]> };

/** A fused op's inputs are a record (or list) of tensors and records; its gradients come back in that shape. */
export interface FusedDef<I extends object, S extends Record<string, tf.Tensor>> {
  /** The op's value, and the activations its backward reads (kept by tfjs until the backward has run). */
  forward(inputs: I): { value: tf.Tensor; saved: S };
  /** Gradients of every input, from the output's gradient dy. */
  backward(dy: tf.Tensor, saved: S, inputs: I): GradTree<I>;
}

/** The tensors of `tree`, walked in the order of `template`'s names (the gradients in their inputs' order). */
function leaves(template: unknown, tree: unknown = template, out: tf.Tensor[] = []): tf.Tensor[] {
  if (template instanceof tf.Tensor) {
    if (!(tree instanceof tf.Tensor))
      throw new Error('a fused op returned no gradient for one of its inputs');
    out.push(tree);
  } else {
    const named = tree as Record<string, unknown>;
    for (const [name, sub] of Object.entries(template as object)) leaves(sub, named[name], out);
  }
  return out;
}

/** Runs `def` on `inputs` as one differentiable op: gradients flow to every tensor in `inputs`, none elsewhere. */
export function runFused<I extends object, S extends Record<string, tf.Tensor>>(
  inputs: I,
  def: FusedDef<I, S>,
): tf.Tensor {
  const flat = leaves(inputs);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[flat.length] as tf.GradSaveFunc;
    // args[0..] are `flat` itself (customGrad passes its inputs through), so the record is read as given
    const { value, saved } = def.forward(inputs);
    const names = Object.keys(saved);
    save(names.map((n) => saved[n] as tf.Tensor));
    return {
      value,
      // tfjs runs gradFunc outside any scope: the tidy frees this op's temporaries now rather than at the end
      // of the whole backward pass (gigabytes at the paper's size).
      gradFunc: (dy: tf.Tensor, kept: tf.Tensor[]) =>
        tf.tidy(() => {
          const s = Object.fromEntries(names.map((n, i) => [n, kept[i]])) as S;
          return leaves(inputs, def.backward(dy, s, inputs));
        }),
    };
  });
  return op(...flat);
}

/** Identity forward, zero gradient (tfjs has no stopGradient op). */
export const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = args[0] as tf.Tensor;
  return { value: tf.clone(x), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
}) as (x: tf.Tensor) => tf.Tensor;
