/**
 * The numerical choices where this pipeline and the authors' code (naiq/LEA, MinD-Vis, the metric libraries LEA
 * pins) can compute the same step differently (issue 31). Each is a config option (its values:
 * lib/config/choice-values.ts); the paper configs name the value the authors' code takes, so their numbers are
 * reproduced, and the run record states every value (`choices`), so a result says how it was computed.
 */
import type { ReproductionConfig } from './reproduction.js';

export interface UpstreamChoice {
  /** The config field. */
  field: string;
  /** The value the authors' code takes. */
  upstream: string;
  /** The plan stages whose config (so cache key) it enters: the stages that compute with it. */
  stages: readonly string[];
  /** The config's value; undefined where the choice does not apply (e.g. a GOD-only rule on BOLD5000). */
  read(cfg: ReproductionConfig): string | undefined;
}

export const UPSTREAM_CHOICES: readonly UpstreamChoice[] = [
  {
    field: 'data.testNormalisation',
    upstream: 'upstream',
    stages: ['prepare'],
    read: (c) => (c.data.dataset === 'god' ? c.data.testNormalisation : undefined),
  },
  {
    field: 'data.imageResize',
    upstream: 'bilinear',
    // the prepared ground truth and the image side's images are resized alike
    stages: ['prepare', 'images'],
    read: (c) => (c.data.imageSize === undefined ? undefined : c.data.imageResize),
  },
  {
    field: 'data.clipInput',
    upstream: 'stored',
    // the images stage keeps the stored images beside the resized ones; image-features reads them
    stages: ['images', 'image-features'],
    read: (c) =>
      c.data.imageSize !== undefined && c.models.imageFeatures.kind === 'clip' ? c.data.clipInput : undefined,
  },
  {
    field: 'data.patchPadding',
    upstream: 'mindvis',
    stages: ['mae'],
    // only a stage 0 trained here cuts patches (imported MAE weights skip it)
    read: (c) => (c.training.mae && !('initFrom' in c.training.mae) ? c.data.patchPadding : undefined),
  },
  {
    field: 'models.tokenizer.numerics',
    upstream: 'lea-port',
    // MaskGIT's stage reads the tokenizer's section too (its codes and grid)
    stages: ['tokenizer', 'maskgit'],
    read: (c) => (c.models.tokenizer.kind === 'vqgan' ? c.models.tokenizer.numerics : undefined),
  },
  {
    field: 'models.maskgit.numerics',
    upstream: 'lea-port',
    stages: ['maskgit'],
    read: (c) => c.models.maskgit.numerics,
  },
  {
    field: 'metrics.fidResize',
    upstream: 'tf1',
    stages: ['metrics'],
    read: (c) => (c.metrics.inception ? c.metrics.fidResize : undefined),
  },
];

/** The run record's `choices`: each choice that applies to the config, field → value. */
export function upstreamChoices(cfg: ReproductionConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of UPSTREAM_CHOICES) {
    const value = c.read(cfg);
    if (value !== undefined) out[c.field] = value;
  }
  return out;
}
