/**
 * A synthetic world written in the real dataset formats (GOD's npz files, BOLD5000's beta .npy files,
 * presentation lists and pickled image dict), so the real loaders, and everything after them, run on it.
 * The generative model is lib/data/synth/world.ts; lib/data/synth/god-writer.ts and bold5000-writer.ts write
 * it in each dataset's layout.
 *
 * Everything is drawn from lib/compute/rng.ts streams of the given seed: the same seed gives the same bytes.
 */
import { BadInputError } from '../errors.js';
import { withOutputDir } from './common.js';
import { synthBold } from './synth/bold5000-writer.js';
import { synthGod } from './synth/god-writer.js';
import { SYNTH_SCALES, type SynthFormat, type SynthScale, type SynthSummary } from './synth/world.js';

export { SYNTH_SCALES, type SynthFormat, type SynthScale, type SynthSummary } from './synth/world.js';

export interface SynthOptions {
  format: SynthFormat;
  out: string;
  seed: number;
  scale: SynthScale;
  /** How many subjects see the world (default 1): sbj_1..sbj_N or CSI1..CSIN, each with its own voxels. */
  subjects?: number;
}

/** Subjects per world: GOD has five, BOLD5000 four. */
export const SYNTH_MAX_SUBJECTS: Readonly<Record<SynthFormat, number>> = { god: 5, bold5000: 4 };

/** Writes the synthetic world into `out` (absent or empty), atomically. */
export async function synthesize(opts: SynthOptions): Promise<SynthSummary> {
  const spec = SYNTH_SCALES[opts.scale];
  const count = opts.subjects ?? 1;
  const max = SYNTH_MAX_SUBJECTS[opts.format];
  if (!Number.isInteger(count) || count < 1 || count > max)
    throw new BadInputError(
      `subjects: a synthetic ${opts.format} world has 1 to ${max} subjects, not ${count}`,
    );
  if (opts.format === 'bold5000' && opts.scale === 'paper' && count > 1)
    throw new BadInputError('the paper-scale BOLD5000 world models CSI1 only (CSI2-4 have other ROI groups)');
  return withOutputDir(opts.out, (dir) =>
    (opts.format === 'god' ? synthGod : synthBold)(dir, spec, opts.seed, opts.scale, count),
  );
}
