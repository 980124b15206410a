/**
 * The three numerical choices where LEA's PyTorch port of MaskGIT and MaskGIT's own Flax code compute the same
 * networks differently (issue 31): the VQGAN's GroupNorm epsilon, the transformer's embedding LayerNorm
 * epsilon and its GELU. Both are legitimate references: lea-port is what produced LEA's numbers, maskgit-flax
 * what MaskGIT's checkpoints were trained with. Chosen at import (`lea weights import --numerics`) and in the
 * config (`models.tokenizer.numerics`, `models.maskgit.numerics`); the run record names the value.
 */

/** Exact Φ-based GELU (PyTorch's nn.GELU default), or the tanh form (jax.nn.gelu's default, approximate=True). */
export type GeluForm = 'erf' | 'tanh';

export interface MaskGitNumericValues {
  /** VQGAN GroupNorm: nn.GroupNorm's default 1e-5; Flax's nn.GroupNorm 1e-6. */
  groupNormEps: number;
  /** The transformer's embedding LayerNorm: nn.LayerNorm's default 1e-5; MaskGIT's embeddings_ln 1e-12. */
  embedLayerNormEps: number;
  gelu: GeluForm;
}

export type MaskGitNumerics = 'lea-port' | 'maskgit-flax';

export const MASKGIT_NUMERIC_VALUES: Readonly<Record<MaskGitNumerics, MaskGitNumericValues>> = {
  'lea-port': { groupNormEps: 1e-5, embedLayerNormEps: 1e-5, gelu: 'erf' },
  'maskgit-flax': { groupNormEps: 1e-6, embedLayerNormEps: 1e-12, gelu: 'tanh' },
};

const SOURCES: Readonly<Record<MaskGitNumerics, string>> = {
  'lea-port': "LEA's PyTorch port (nn.GroupNorm, nn.LayerNorm and nn.GELU defaults)",
  'maskgit-flax': "MaskGIT's Flax code (nn.GroupNorm's and embeddings_ln's epsilons, jax.nn.gelu)",
};

/** One line for a weights record's notes: the choice, where it comes from, its three values. */
export function describeMaskGitNumerics(n: MaskGitNumerics): string {
  const v = MASKGIT_NUMERIC_VALUES[n];
  return (
    `${n}: ${SOURCES[n]}; GroupNorm eps ${v.groupNormEps}, embedding LayerNorm eps ${v.embedLayerNormEps}, ` +
    `${v.gelu} GELU`
  );
}
