/**
 * `lea compare RUN_A RUN_B` (runs or suites): each metric of both with its interval, the paired difference
 * B − A on the test items both scored with its interval and p-value (corrected over the metrics), and the stages
 * whose outputs differ with what differs in each. `--json` prints the same as JSON.
 */
import { Option, type Command } from 'commander';
import { completedResult } from '../../activities/judge.js';
import { BadInputError } from '../../lib/errors.js';
import { intervalsOfSummary } from '../../lib/metrics/intervals.js';
import {
  choiceCauses,
  compareMetrics,
  stageDifferences,
  type ComparedRun,
  type MetricComparison,
  type StageProvenance,
} from '../../lib/pipeline/compare.js';
import type { StageRecord } from '../../lib/pipeline/run-record.js';
import { readItemScores, scoresRefOf } from '../../lib/pipeline/run-scores.js';
import type { SuiteMember } from '../../lib/pipeline/suite.js';
import { fmtNumber } from '../../lib/report/format.js';
import { CORRECTIONS, type Correction } from '../../lib/stats/multiple.js';
import { ArtifactStore, type ArtifactRef } from '../../lib/storage/artifact-store.js';
import { positiveInt } from '../args.js';
import { weightsOf } from '../run-records.js';
import { ensureServers, settingsFromEnv, withClient } from '../context.js';
import type { Client } from '@temporalio/client';

interface CompareOptions {
  alpha: number;
  resamples: number;
  correction: Correction;
  json?: boolean;
}

/** A run's or suite's finished result, as far as a comparison reads it. */
interface FinishedResult {
  metrics: Record<string, number>;
  stages?: StageRecord[];
  members?: SuiteMember[];
  scores?: ArtifactRef | null;
  metricIntervals?: Record<string, [number, number]>;
}

const finished = (client: Client, runId: string) =>
  completedResult<FinishedResult>(client, runId, `run '${runId}'`);

/** Each stage's provenance from its output's manifest (a suite: those of its first run). */
async function provenance(
  client: Client,
  store: ArtifactStore,
  result: FinishedResult,
): Promise<StageProvenance[]> {
  const stages =
    result.stages ?? (result.members?.[0] ? (await finished(client, result.members[0].runId)).stages : []);
  return Promise.all(
    (stages ?? []).map(async (s) => {
      if (!s.output) return { name: s.name };
      const meta = (await store.require(s.output)).meta as {
        codeVersion?: string;
        config?: unknown;
        inputs?: Record<string, { key: string }>;
        summary?: Record<string, unknown>;
        compute?: { backend?: string };
      };
      const { weights = {} } = weightsOf(meta);
      return {
        name: s.name,
        key: s.output.key,
        ...(meta.codeVersion ? { codeVersion: meta.codeVersion } : {}),
        config: meta.config,
        ...(meta.inputs ? { inputs: meta.inputs } : {}),
        weights,
        ...(meta.compute?.backend ? { backend: meta.compute.backend } : {}),
      };
    }),
  );
}

/** The upstream choices of a run's record (a suite: of its first run); absent in runs older than them. */
async function choicesOf(
  client: Client,
  runId: string,
  result: FinishedResult,
): Promise<Record<string, string> | undefined> {
  const id = result.members?.[0]?.runId ?? runId;
  const memo = (await client.workflow.getHandle(id).describe()).memo as
    { choices?: Record<string, string> } | undefined;
  return memo?.choices;
}

async function comparedRun(
  store: ArtifactStore,
  runId: string,
  result: FinishedResult,
): Promise<ComparedRun> {
  const items = await readItemScores(store, scoresRefOf(result));
  const intervals =
    result.metricIntervals ??
    intervalsOfSummary(result.stages?.find((s) => s.name === 'metrics')?.summary ?? {})?.metricIntervals;
  return {
    runId,
    metrics: result.metrics,
    ...(intervals ? { metricIntervals: intervals } : {}),
    ...(items ? { items } : {}),
  };
}

function formatTable(rows: MetricComparison[], alpha: number): string {
  const f = (v: number | null | undefined) => (v === null || v === undefined ? '–' : fmtNumber(v));
  const ci = (b?: [number, number]) => (b ? ` [${fmtNumber(b[0])}, ${fmtNumber(b[1])}]` : '');
  const heads = ['metric', 'A', 'B', `B − A [${+(100 * (1 - alpha)).toFixed(2)}%]`, 'p (corrected)', 'test'];
  const body = rows.map((r) => [
    r.metric,
    f(r.a) + ci(r.aInterval),
    f(r.b) + ci(r.bInterval),
    f(r.difference) + ci(r.interval),
    r.p === undefined ? '–' : `${r.p.toPrecision(2)} (${r.pAdjusted!.toPrecision(2)})`,
    r.test === 'paired sign-flip' ? `paired sign-flip, ${r.items} items` : 'none (no per-item scores)',
  ]);
  const widths = heads.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(heads), ...body.map(line)].join('\n');
}

export function registerCompareCommand(program: Command): void {
  program
    .command('compare')
    .description(
      'compare two finished runs or suites: both values with intervals, the paired difference on shared test ' +
        'items with its interval and p-value, and the stages whose outputs differ (and why)',
    )
    .argument('<runA>', 'run or suite id (the reference)')
    .argument('<runB>', 'run or suite id (the candidate)')
    .addOption(
      new Option('--alpha <a>', 'level: intervals of differences are 1 - alpha')
        .argParser((v) => {
          const a = Number(v);
          if (!(a > 0 && a < 1)) throw new BadInputError(`--alpha ${v}: expected a number between 0 and 1`);
          return a;
        })
        .default(0.01),
    )
    .option('--resamples <n>', 'bootstrap resamples and random sign patterns', positiveInt, 10_000)
    .addOption(new Option('--correction <method>', 'over the metrics').choices(CORRECTIONS).default('holm'))
    .option('--json', 'print the comparison as JSON')
    .action(async (a: string, b: string, opts: CompareOptions) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      try {
        await withClient(async (client) => {
          const [ra, rb] = [await finished(client, a), await finished(client, b)];
          const metrics = compareMetrics(
            await comparedRun(store, a, ra),
            await comparedRun(store, b, rb),
            opts,
          );
          const stages = stageDifferences(
            await provenance(client, store, ra),
            await provenance(client, store, rb),
            choiceCauses(await choicesOf(client, a, ra), await choicesOf(client, b, rb)),
          );
          const method =
            `paired on the test items both scored (a suite: items pooled over its runs); two-sided sign-flip test ` +
            `of B − A (exact over all 2^n sign patterns when 2^n <= ${opts.resamples}, else ${opts.resamples} ` +
            `random ones), ${opts.correction} correction over ${metrics.filter((m) => m.p !== undefined).length} ` +
            `metrics; intervals of the difference: ${+(100 * (1 - opts.alpha)).toFixed(2)}% percentile bootstrap ` +
            `over items; A and B's own intervals as their runs computed them`;
          if (opts.json) {
            console.log(JSON.stringify({ a, b, method, metrics, stages }, null, 2));
            return;
          }
          console.log(`A ${a}\nB ${b}\n\n${formatTable(metrics, opts.alpha)}\n\n${method}`);
          console.log(
            stages.length ? '\nstages whose outputs differ:' : '\nevery stage output is the same artifact',
          );
          for (const s of stages) console.log(`  ${s.stage}: ${s.differences.join('; ')}`);
        });
      } finally {
        store.s3.destroy();
      }
    });
}
