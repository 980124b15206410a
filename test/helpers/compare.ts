/** Comparing arrays with a reference: the largest absolute difference over the reference's largest magnitude. */
import assert from 'node:assert/strict';

export function maxRelError(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  assert.equal(ours.length, ref.length, 'compared arrays differ in length');
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(ours[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  return err / scale;
}
