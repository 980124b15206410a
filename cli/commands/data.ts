/** `lea data synth|prepare`: the synthetic world and the model-ready split of one subject (local folders). */
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { TEST_NORMALISATIONS, type TestNormalisation } from '../../lib/config/choice-values.js';
import { BadInputError } from '../../lib/errors.js';
import type { DatasetName } from '../../lib/data/common.js';
import { prepareDataset } from '../../lib/data/prepare.js';
import { synthesize } from '../../lib/data/synth.js';
import { registerDataFetchCommand } from './data-fetch.js';
import type { SynthFormat, SynthScale } from '../../lib/data/synth.js';

const DATASETS = ['god', 'bold5000'] as const;
const SCALES = ['tiny', 'small', 'paper'] as const;
const SUBJECT_PATTERN: Record<DatasetName, RegExp> = { god: /^sbj_[0-9]+$/, bold5000: /^CSI[0-9]+$/ };

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new BadInputError(`${flag} must be one of ${allowed.join(', ')}, got '${value}'`);
  return value as T;
}

function seedOf(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n))
    throw new BadInputError(`--seed must be a non-negative integer, got '${value}'`);
  return n;
}

export function registerDataCommands(program: Command): void {
  const data = program.command('data').description('datasets: synthetic world, preparation of one subject');
  registerDataFetchCommand(data);

  data
    .command('synth')
    .description('write a synthetic world in the GOD or BOLD5000 file formats')
    .requiredOption('--format <format>', `file format: ${DATASETS.join('|')}`)
    .requiredOption('--out <dir>', 'output folder (absent or empty)')
    .requiredOption('--seed <n>', 'seed of every random draw')
    .option('--scale <scale>', `size: ${SCALES.join('|')} (paper = the real shapes)`, 'tiny')
    .option('--subjects <n>', 'subjects seeing the world (GOD up to 5, BOLD5000 up to 4)', '1')
    .action(async (opts: { format: string; out: string; seed: string; scale: string; subjects: string }) => {
      const format = oneOf<SynthFormat>('--format', opts.format, DATASETS);
      const scale = oneOf<SynthScale>('--scale', opts.scale, SCALES);
      if (!/^[1-9]$/.test(opts.subjects))
        throw new BadInputError(`--subjects must be a small positive integer, got '${opts.subjects}'`);
      const summary = await synthesize({
        format,
        scale,
        seed: seedOf(opts.seed),
        subjects: Number(opts.subjects),
        out: opts.out,
      });
      console.log(
        `wrote a synthetic ${format} world (${scale}, subject${summary.subjects.length > 1 ? 's' : ''} ${summary.subjects.join(', ')}) to ${opts.out}: ${summary.files.join(', ')}`,
      );
    });

  data
    .command('prepare')
    .description('load one subject, split and z-score it, and write model-ready .npy files and meta.json')
    .requiredOption('--dataset <name>', DATASETS.join('|'))
    .requiredOption('--path <dir>', 'dataset folder (MinD-Vis layout)')
    .requiredOption('--subject <id>', 'sbj_N (GOD) or CSIn (BOLD5000)')
    .requiredOption('--out <dir>', 'output folder (absent or empty)')
    .option(
      '--test-normalisation <rule>',
      `GOD's test fMRI: ${TEST_NORMALISATIONS.join('|')} (upstream: LEA's code, left in raw units)`,
      'upstream',
    )
    .action(
      async (opts: {
        dataset: string;
        path: string;
        subject: string;
        out: string;
        testNormalisation: string;
      }) => {
        const dataset = oneOf<DatasetName>('--dataset', opts.dataset, DATASETS);
        const testNormalisation = oneOf<TestNormalisation>(
          '--test-normalisation',
          opts.testNormalisation,
          TEST_NORMALISATIONS,
        );
        if (!SUBJECT_PATTERN[dataset].test(opts.subject)) {
          throw new BadInputError(
            `--subject for ${dataset} must match ${SUBJECT_PATTERN[dataset].source}, got '${opts.subject}'`,
          );
        }
        const s = await stat(opts.path).catch(() => undefined);
        if (!s?.isDirectory()) throw new BadInputError(`--path ${opts.path} is not a directory`);
        const meta = await prepareDataset({
          dataset,
          path: opts.path,
          subject: opts.subject,
          out: opts.out,
          testNormalisation,
        });
        console.log(
          `prepared ${dataset} ${meta.subject}: K=${meta.K} (ROIs ${meta.roiSizes.join('+')}), train ${meta.split.train}, test ${meta.split.test}; ` +
            `z-scored with mean ${meta.normalisation.mean.toPrecision(6)}, std ${meta.normalisation.std.toPrecision(6)}; wrote ${meta.files.join(', ')} to ${opts.out}`,
        );
      },
    );
}
