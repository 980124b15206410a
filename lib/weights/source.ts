/**
 * What every upstream checkpoint reader (torch.save zip or legacy, Flax msgpack, safetensors) hands to the weight
 * importer: the tensors of the selected entry, by flattened name, each read lazily, so a 4.77 GB CLIP file
 * imports with only the tensors a kind asks for in memory. Readers execute nothing from the file.
 */
import type { NdArray } from '../tensors/ndarray.js';

/** Element types as stored in the source file; `read()` widens float16/bfloat16 to float32. */
export type SourceDType =
  'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface TensorRef {
  /** Flattened name: torch keys as stored ('visual.conv1.weight'); Flax paths joined with '/' ('params/encoder/Conv_0/kernel'). */
  readonly name: string;
  readonly dtype: SourceDType;
  readonly shape: readonly number[];
  /** Reads this tensor's values in C order (floats as float32, integers as int32/int64, bool/uint8 as bytes). */
  read(): Promise<NdArray>;
}

/** 'torch-legacy': torch.save before torch 1.6 (or `_use_new_zipfile_serialization=False`). */
export type CheckpointFormat = 'torch-zip' | 'torch-legacy' | 'flax-msgpack' | 'safetensors';

/**
 * The format a kind's `formats` list names for files of this format: both torch.save layouts hold the
 * same pickled state dict, so 'torch-legacy' counts as 'torch-zip'; the others are themselves.
 */
export function formatFamily(format: CheckpointFormat): CheckpointFormat {
  return format === 'torch-legacy' ? 'torch-zip' : format;
}

export interface CheckpointSource {
  readonly path: string;
  readonly format: CheckpointFormat;
  /** The selected entry's tensors, in file order. */
  readonly tensors: ReadonlyMap<string, TensorRef>;
  /**
   * Plain data found beside the tensors, where it can be read as data without constructing anything:
   * e.g. MinD-Vis's pickled `config` object → its attribute dict ({patch_size: 16, ...}); 'epoch' → 499.
   * Entries that are not plain data are left out.
   */
  readonly extras: Readonly<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /**
   * Torch checkpoints: the root dict key holding the state dict (MinD-Vis: 'model'). Only that entry is
   * checked against the pickle allow-list; the others are skipped (never constructed). Undefined: the root
   * object is the state dict itself (open_clip, torchvision).
   */
  entry?: string;
}
