/**
 * Suites: several runs started as one, reported as the paper lays out its tables (a row per subject, then the
 * mean), or one config under several seeds. What the suite workflow, its report and `lea status` share.
 */
import type { ReproductionConfig } from '../config/reproduction.js';
import type { RunStatus } from './run-record.js';

export interface SuiteMember {
  runId: string;
  configName: string;
  dataset: string;
  subject: string;
  /** The member's seed, in a seed suite. */
  seed?: number;
  /** The member's point, in a sweep: what it sets (`decoding.steps=4 alignment.ridgeAlpha=10`). */
  point?: string;
  status: RunStatus;
  metrics: Record<string, number>;
  error?: string;
}

/** Each metric's mean over the completed members that have it (a failed member leaves the mean over fewer). */
export function meanMetrics(members: Pick<SuiteMember, 'status' | 'metrics'>[]): Record<string, number> {
  const sums = new Map<string, { total: number; n: number }>();
  for (const m of members) {
    if (m.status !== 'completed') continue;
    for (const [name, v] of Object.entries(m.metrics)) {
      if (!Number.isFinite(v)) continue;
      const s = sums.get(name) ?? { total: 0, n: 0 };
      sums.set(name, { total: s.total + v, n: s.n + 1 });
    }
  }
  return Object.fromEntries([...sums].map(([name, s]) => [name, s.total / s.n]));
}

/** A suite's name: its members' config names, joined (the LeaConfig search attribute of the suite). */
export function suiteName(configNames: string[]): string {
  return configNames.join('+');
}

/**
 * Standard deviation over the completed members that have a metric (n - 1 in the denominator; absent below two
 * members): the spread over subjects, or over seeds in a seed suite.
 */
export function sdMetrics(members: Pick<SuiteMember, 'status' | 'metrics'>[]): Record<string, number> {
  const values = new Map<string, number[]>();
  for (const m of members) {
    if (m.status !== 'completed') continue;
    for (const [name, v] of Object.entries(m.metrics))
      if (Number.isFinite(v)) values.set(name, [...(values.get(name) ?? []), v]);
  }
  const out: Record<string, number> = {};
  for (const [name, v] of values) {
    if (v.length < 2) continue;
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    out[name] = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
  }
  return out;
}

/** The row label of a member: its subject (a sweep's: its point), and its seed in a seed suite. */
export const memberLabel = (m: Pick<SuiteMember, 'subject' | 'seed' | 'point'>): string => {
  const what = m.point ?? m.subject;
  return m.seed === undefined ? what : `${what} seed ${m.seed}`;
};

/**
 * What each seed of a seed suite re-draws (`seeds` in the config, or `lea run --seeds N`):
 *   training  every random stream of the run: model initialisation and batch order of every trained stage
 *             (stage 0, the autoencoder with its voxel dropout, the tokenizer's k-means, MaskGIT with its
 *             masking), decoding's MaskGIT sampling, the n-way trials' distractors and the bootstrap; in the
 *             miniature also its random feature map φ (the paper's CLIP is imported: no seed reaches it);
 *   sampling  decoding's sampling, the n-way distractors and the bootstrap only (samplingSeed): every trained
 *             model is shared, so a seed costs a decode and a metrics stage.
 * Cached stages are shared wherever the seed does not reach them (the data, the image set, imported networks'
 * features). A config without seeds is its own single member.
 */
export function seedMembers(cfg: ReproductionConfig): ReproductionConfig[] {
  if (!cfg.seeds) return [cfg];
  return cfg.seeds.map((s) => ({
    ...cfg,
    seeds: undefined,
    name: `${cfg.name}-seed${s}`,
    ...(cfg.seedScope === 'sampling' ? { samplingSeed: s } : { seed: s }),
  }));
}
