/**
 * Reading a computed tensor's values into JS. tf.tidy must never return the values themselves: it walks whatever
 * it returns key by key looking for tensors, so a returned typed array costs a Set insertion per element (~1 µs):
 * 13 s for one MaskGIT decoding step's logits of 50 images, which was most of the decode stage.
 */
import * as tf from '@tensorflow/tfjs';

/** The values of the tensor `build` makes inside a tf.tidy (its temporaries freed), as a new array. */
export function tidyValues<D extends tf.NumericDataType = 'float32'>(
  build: () => tf.Tensor,
): tf.DataTypeMap[D] {
  const t = tf.tidy(build);
  try {
    // a copy: on the cpu backend dataSync hands out the tensor's own storage
    return t.dataSync<D>().slice() as tf.DataTypeMap[D];
  } finally {
    t.dispose();
  }
}
