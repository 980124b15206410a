/**
 * Image-to-fMRI encoding (spec §1 stage 5, §2.6): image features → encoding ridge → fMRI latent →
 * transductive re-normalisation to the training latents' statistics → the fMRI autoencoder's decoder →
 * voxels. The feature extractor and the decoder network come from the caller.
 */
import type { Mat } from './matrix.js';
import { predictRidge, renormalise, type RidgeModel } from './ridge.js';

export interface EncodeOptions {
  /** The encoding map (fitEncodingMap: image feature → fMRI latent). */
  map: RidgeModel;
  /** Training fMRI latents, whose per-dimension mean and std the predictions take on. */
  latentTrain: Mat;
  /** The autoencoder decoder: latents [rows·width] (row-major) → voxels [rows·K]. */
  decode: (latents: Float32Array, rows: number) => Promise<Float32Array>;
}

export interface Encoded {
  /** Re-normalised predicted latents, [N, latent width]. */
  latents: Mat;
  /** Predicted voxels, [N, K] row-major. */
  voxels: Float32Array;
  voxelCount: number;
}

/** Encodes the test set's image features, [N, feature width]; N >= 2 for the re-normalisation. */
export async function encodeFeatures(features: Mat, options: EncodeOptions): Promise<Encoded> {
  const latents = renormalise(await predictRidge(options.map, features), options.latentTrain);
  const voxels = await options.decode(Float32Array.from(latents.data), latents.rows);
  if (voxels.length === 0 || voxels.length % latents.rows !== 0) {
    throw new Error(`decoder returned ${voxels.length} values for ${latents.rows} latents`);
  }
  return { latents, voxels, voxelCount: voxels.length / latents.rows };
}
