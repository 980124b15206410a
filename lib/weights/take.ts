/**
 * Reading a checkpoint's tensors for a kind's mapping: each tensor is read once, its shape checked against the
 * architecture the kind inferred, and whatever the mapping never touched is reported as unused.
 */
import { BadInputError } from '../errors.js';
import type { NdArray } from '../tensors/ndarray.js';
import type { CheckpointSource } from './source.js';

export class TensorTaker {
  private readonly used = new Set<string>();

  constructor(readonly src: CheckpointSource) {}

  has(name: string): boolean {
    return this.src.tensors.has(name);
  }

  /** The stored shape of a tensor the mapping needs. */
  shape(name: string): readonly number[] {
    const ref = this.src.tensors.get(name);
    if (!ref) throw new BadInputError(`${this.src.path}: tensor '${name}' is missing`);
    return ref.shape;
  }

  /** Reads a tensor, checking its shape when `expected` is given (-1 leaves a dimension free). */
  async take(name: string, expected?: readonly number[]): Promise<NdArray> {
    const shape = this.shape(name);
    if (
      expected &&
      (shape.length !== expected.length || expected.some((d, i) => d !== -1 && d !== shape[i]))
    ) {
      throw new BadInputError(
        `${this.src.path}: tensor '${name}' has shape [${shape.join(', ')}], expected [${expected.join(', ')}]`,
      );
    }
    this.used.add(name);
    return this.src.tensors.get(name)!.read();
  }

  /** Marks tensors as deliberately not imported (they still count as read). */
  skip(name: string): void {
    if (this.has(name)) this.used.add(name);
  }

  /** How many consecutive `${prefix}${i}${suffix}` tensors exist, from i = 0. */
  count(prefix: string, suffix: string): number {
    let n = 0;
    while (this.has(`${prefix}${n}${suffix}`)) n++;
    return n;
  }

  unused(): string[] {
    return [...this.src.tensors.keys()].filter((k) => !this.used.has(k));
  }
}

/** A positive integer dimension read from a shape, or a BadInputError naming the tensor. */
export function dim(t: TensorTaker, name: string, axis: number, rank: number): number {
  const shape = t.shape(name);
  const d = shape[axis];
  if (shape.length !== rank || d === undefined || d < 1) {
    throw new BadInputError(
      `${t.src.path}: tensor '${name}' has shape [${shape.join(', ')}], expected a rank-${rank} tensor`,
    );
  }
  return d;
}
