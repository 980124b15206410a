/**
 * The contract of one upstream network kind (lib/weights/kinds/*.ts): how its checkpoint maps onto the
 * project's parameter names and layouts, which architecture the shapes imply, and how to run it. The table of
 * kinds is lib/weights/kinds/index.ts: a new kind is one file and one entry there.
 */
import type { MaskGitNumerics } from '../models/maskgit-numerics.js';
import type { ImageBatch } from '../models/types.js';
import type { NdArray } from '../tensors/ndarray.js';
import type { CheckpointFormat, CheckpointSource } from './source.js';

export interface ImportOptions {
  /** Overrides the kind's published head width (heads are not stored in these files). */
  heads?: number;
  /** Overrides the GroupNorm group count (not stored either; MaskGIT's VQGAN uses Flax's default, 32). */
  groups?: number;
  /** MaskGIT's numerics the imported network computes with (not stored in the file); lea-port by default. */
  numerics?: MaskGitNumerics;
}

export interface ImportedNetwork {
  /** Project names → values in project layouts (float32 unless the parameter is integral). */
  tensors: Map<string, NdArray>;
  /** The architecture read from the shapes (JSON-able; it is stored in the artifact and rebuilds the model). */
  config: Record<string, unknown>;
  /** Source tensors the mapping did not use (reported, not an error: e.g. open_clip's text tower). */
  unused: string[];
  /** Choices the mapping made that a reader of the artifact must know (epsilons, head count source). */
  notes: Record<string, string | number | boolean>;
}

/** A network built from an imported artifact, with the outputs `lea embed` offers. */
export interface Network {
  /** Output name ('features', 'logits', 'tokens', 'reconstruct') → images in, [N, ...] array out. */
  readonly outputs: Readonly<Record<string, (images: ImageBatch) => Promise<NdArray>>>;
  dispose(): void;
}

export interface WeightKind {
  readonly name: string;
  /** One line: which upstream file this is. */
  readonly description: string;
  readonly formats: readonly CheckpointFormat[];
  /** Torch checkpoints: the root dict key holding the state dict (see OpenOptions.entry). */
  readonly entry?: string;
  /** The import options its mapping reads (the CLI flag of the same name); another one is refused. */
  readonly options: readonly (keyof ImportOptions)[];
  /** Bumped whenever the mapping changes what it produces (recorded in provenance and cache keys). */
  readonly mappingVersion: number;
  /**
   * Maps the source's tensors: reads the architecture's sizes from the shapes, checks every shape for
   * consistency with them, and throws BadInputError naming the file and the offending tensor. Reads only the
   * tensors it uses (TensorRef.read), one at a time where it can.
   */
  importFrom(src: CheckpointSource, opts: ImportOptions): Promise<ImportedNetwork>;
  /** The published full-size values of the config fields `--expect full` checks. */
  readonly fullSize: Readonly<Record<string, unknown>>;
  /** Builds the runnable network from an imported artifact (absent for kinds only the pipeline loads). */
  build?(tensors: Map<string, NdArray>, config: Record<string, unknown>): Network;
}
