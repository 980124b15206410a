/**
 * The `sweep:` section of a reproduction config (also built from `lea sweep`'s flags): which config fields take
 * which values, as `lea run --set` would set them. lib/pipeline/sweep.ts turns it into the points of a suite.
 *
 *   sweep:
 *     grid:                          # every combination is a point (in this order: the first key varies slowest)
 *       decoding.steps: [4, 8, 11]
 *       alignment.ridgeAlpha: [10, 500]
 *     sample: 4                      # optional: a seeded random sample of this many points (the baseline kept)
 *     sampleSeed: 0                  # the sample's seed (default: the config's seed)
 *     baselinePoint: { decoding.steps: 11 }   # the point every other is compared with (default: the one with
 *                                             # the config's own values, else the first)
 *     metrics: [decode.twoway_pcc]   # the family the correction runs over (default: every metric)
 */
import { z } from 'zod';

/** A dotted config path, as `--set` takes it. */
export const configPath = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/, 'a dotted config path, e.g. decoding.steps');

/** A value `--set` can give: anything YAML parses to but a mapping (a section is swept field by field). */
const sweptValue = z.union([
  z.number(),
  z.string(),
  z.boolean(),
  z.null(),
  z.array(z.union([z.number(), z.string(), z.boolean()])),
]);

export const sweepSection = z.strictObject({
  grid: z
    .record(configPath, z.array(sweptValue).min(1))
    .refine((g) => Object.keys(g).length > 0, 'at least one swept key')
    .refine(
      (g) => Object.values(g).every((vs) => new Set(vs.map((v) => JSON.stringify(v))).size === vs.length),
      'the values of a key must differ',
    ),
  sample: z.number().int().min(1).optional(),
  sampleSeed: z.number().int().min(0).optional(),
  baselinePoint: z.record(configPath, sweptValue).optional(),
  metrics: z.array(z.string().min(1)).min(1).optional(),
});

export type SweepSection = z.output<typeof sweepSection>;
export type SweptValue = z.output<typeof sweptValue>;
