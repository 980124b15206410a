/**
 * The records lib/models and lib/weights exchange, below both: every image model takes an ImageBatch, and a
 * model built from imported weights (CLIP features) takes them as ImportedWeights. Weight kinds depend on
 * models, never the reverse, so these types live in neither.
 */
import type * as tf from '@tensorflow/tfjs';
import type { NdArray } from '../tensors/ndarray.js';

/** A model's trainable parameters by PyTorch name (see layers.ts for the storage layout). */
export type Params = Map<string, tf.Variable>;

/** uint8 images [count, height, width, 3], row-major (the prepared train_images.npy layout). */
export interface ImageBatch {
  data: Uint8Array;
  count: number;
  height: number;
  width: number;
}

export const WEIGHTS_FORMAT = 'lea-weights/1';

export interface WeightsRecord {
  format: typeof WEIGHTS_FORMAT;
  name: string;
  kind: string;
  mappingVersion: number;
  source: { file: string; sha256: string; size: number; format: string };
  /** The architecture read from the file; rebuilds the network. */
  config: Record<string, unknown>;
  notes: Record<string, string | number | boolean>;
  parameters: number;
  tensors: number;
  unused: { count: number; names: string[] };
  /** Whether `--expect full` was checked against the kind's published sizes. */
  checkedFullSize: boolean;
}

/** An imported network as a stage reads it: its file, its record and its tensors in project layouts. */
export interface ImportedWeights {
  path: string;
  record: WeightsRecord;
  tensors: Map<string, NdArray>;
}
