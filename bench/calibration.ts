/**
 * `npm run bench -- --only calibration [--seeds N]` (default 20): do the per-run bootstrap intervals mean what
 * they say? Runs the smoke config as a seed suite of scope `sampling` (the trained models shared; each seed
 * re-draws decoding's MaskGIT samples, the n-way distractors and the bootstrap), then reports, per item-mean
 * metric, the fraction of seeds whose 95 % interval covers the mean over all seeds. The intervals resample test
 * items, a larger source of variance than the sampling a seed re-draws, so coverage near or above 0.95 is what
 * a correct interval gives; far below it would mean the intervals are too narrow. Runs on the embedded servers
 * (started if needed, as `npm run demo`); prints a table and writes JSON to bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { explain, repoRoot, runLea } from '../test/helpers/lea.js';

const argv = process.argv.slice(2);
const seedsAt = argv.indexOf('--seeds');
const seeds = seedsAt >= 0 ? Number(argv[seedsAt + 1]) : 20;
if (!Number.isInteger(seeds) || seeds < 2)
  throw new Error(`--seeds ${argv[seedsAt + 1]}: expected an integer >= 2`);

const started = Date.now();
const r = runLea(
  ['run', 'configs/smoke.yaml', '--seeds', String(seeds), '--set', 'seedScope=sampling', '--wait', '--json'],
  process.env,
  4 * 3600_000,
);
if (r.code !== 0) throw new Error(explain(r));
const suite = JSON.parse(r.stdout) as RunRecord;
const members = suite.members!.filter((m) => m.status === 'completed');

const rows = Object.keys(members[0]!.metricIntervals ?? {})
  .sort()
  .map((metric) => {
    const grand = members.reduce((s, m) => s + m.metrics[metric]!, 0) / members.length;
    const covering = members.filter((m) => {
      const [low, high] = m.metricIntervals![metric]!;
      return low <= grand && grand <= high;
    }).length;
    const widths = members.map((m) => m.metricIntervals![metric]![1] - m.metricIntervals![metric]![0]);
    const sd = Math.sqrt(
      members.reduce((s, m) => s + (m.metrics[metric]! - grand) ** 2, 0) / (members.length - 1),
    );
    return {
      metric,
      seedsMean: grand,
      sdOverSeeds: sd,
      meanWidth: widths.reduce((a, b) => a + b, 0) / widths.length,
      coverage: covering / members.length,
    };
  });
// The figure: metrics a sampling seed moves (the ridge and encoding rows do not: their intervals cover trivially),
// reference rows (shuffled pairing, voxel ridge) left out.
const moved = (metric: string) => members.some((m) => m.metrics[metric] !== members[0]!.metrics[metric]);
const reached = rows.filter((row) => moved(row.metric) && !row.metric.startsWith('ref.'));
const coverage = reached.reduce((s, row) => s + row.coverage, 0) / reached.length;
const method = members[0]!.intervalMethod;

console.log(
  `calibration: ${members.length} seeds of the smoke config, seedScope sampling; intervals: ${method}`,
);
console.log(
  'metric'.padEnd(34) +
    'mean over seeds'.padStart(16) +
    'sd over seeds'.padStart(15) +
    'mean width'.padStart(12) +
    'coverage'.padStart(10),
);
for (const row of rows)
  console.log(
    row.metric.padEnd(34) +
      row.seedsMean.toFixed(4).padStart(16) +
      row.sdOverSeeds.toFixed(4).padStart(15) +
      row.meanWidth.toFixed(4).padStart(12) +
      row.coverage.toFixed(2).padStart(10),
  );
console.log(
  `coverage over the ${reached.length} result metrics a sampling seed moves: ${coverage.toFixed(3)} ` +
    '(target: between 0.85 and 1)',
);
console.log(`suite ${suite.runId}, ${((Date.now() - started) / 1000).toFixed(0)} s`);

const dir = join(repoRoot, 'bench/results');
mkdirSync(dir, { recursive: true });
writeFileSync(
  join(dir, `calibration-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
  JSON.stringify(
    {
      suite: suite.runId,
      seeds: members.length,
      method,
      coverage,
      reached: reached.map((r) => r.metric),
      rows,
    },
    null,
    2,
  ),
);
