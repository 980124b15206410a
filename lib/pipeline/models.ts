/**
 * Trained models back from their model.safetensors (lib/train/stage.ts saveModel: the weights, plus the
 * model's config in the metadata), for the inference stages: latents, decoding, encoding.
 */
import { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { FmriAutoencoder, type FmriAeConfig } from '../models/fmri-autoencoder.js';
import { loadParamsStrict } from '../models/layers.js';
import { MaskGit, type MaskGitConfig } from '../models/maskgit.js';
import { PatchTokenizer, VqGan, type ImageTokenizer, type VqGanConfig } from '../models/vq-tokenizer.js';
import { readSafetensors } from '../tensors/safetensors.js';
import { MODEL_FORMAT } from '../train/stage.js';

async function readModel(path: string, stage: string) {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== MODEL_FORMAT || metadata.stage !== stage || !metadata.model) {
    throw new BadInputError(
      `${path}: not a ${stage} model file (format ${metadata.format}, stage ${metadata.stage})`,
    );
  }
  return { tensors, config: JSON.parse(metadata.model) as unknown };
}

/** Builds the model from its stored config (the random init is overwritten by the stored weights). */
function withWeights<M extends { params: Map<string, unknown>; dispose(): void }>(
  model: M,
  tensors: Awaited<ReturnType<typeof readModel>>['tensors'],
  path: string,
): M {
  try {
    loadParamsStrict(model.params as never, tensors, path);
    return model;
  } catch (err) {
    model.dispose();
    throw err;
  }
}

export async function loadFmriAutoencoder(path: string): Promise<FmriAutoencoder> {
  const { tensors, config } = await readModel(path, 'fmri-ae');
  return withWeights(new FmriAutoencoder(config as FmriAeConfig, new Rng(0, 'load')), tensors, path);
}

export async function loadMaskGit(path: string): Promise<MaskGit> {
  const { tensors, config } = await readModel(path, 'maskgit');
  return withWeights(new MaskGit(config as MaskGitConfig, new Rng(0, 'load')), tensors, path);
}

export async function loadImageTokenizer(path: string): Promise<ImageTokenizer> {
  const { tensors, config } = await readModel(path, 'tokenizer');
  const cfg = config as { kind?: string; patchSize?: number };
  if (cfg.kind === 'patch-kmeans') {
    const book = tensors.get('quantizer.embedding.weight');
    if (!book || !cfg.patchSize) throw new BadInputError(`${path}: patch tokenizer without its codebook`);
    return new PatchTokenizer(cfg.patchSize, book.data as Float32Array);
  }
  const vq = new VqGan(config as VqGanConfig, new Rng(0, 'load'));
  return withWeights(vq, tensors, path);
}
