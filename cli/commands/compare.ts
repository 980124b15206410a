/**
 * `lea compare RUN_A RUN_B` (runs or suites): each metric of both with its interval, the paired difference
 * B − A on the test items both scored with its interval and p-value (corrected over the declared family of
 * metrics), what that family can detect at all, and the stages whose outputs differ with what differs in each.
 * `lea compare SWEEP`: every point against the sweep's baseline point, the table of its page. `--json` prints the
 * same as JSON.
 */
import { Option, type Command } from 'commander';
import { completedResult } from '../../activities/judge.js';
import { BadInputError } from '../../lib/errors.js';
import {
  choiceCauses,
  COMPARE_DEFAULTS,
  compareMetrics,
  comparedRun,
  comparisonMethod,
  pText,
  rowsDetectability,
  stageDifferences,
  type CompareSettings,
  type MetricComparison,
  type StageProvenance,
} from '../../lib/pipeline/compare.js';
import type { StageRecord } from '../../lib/pipeline/run-record.js';
import type { SuiteMember } from '../../lib/pipeline/suite.js';
import {
  loadSweepComparison,
  parseMetricsArg,
  sweepText,
  type SweepOutcome,
} from '../../lib/pipeline/sweep.js';
import { fmtIntervalAfter, fmtNumber, textTable } from '../../lib/report/format.js';
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
  metrics?: string[];
  json?: boolean;
}

/** A run's or suite's finished result, as far as a comparison reads it. */
interface FinishedResult {
  metrics: Record<string, number>;
  stages?: StageRecord[];
  members?: SuiteMember[];
  scores?: ArtifactRef | null;
  metricIntervals?: Record<string, [number, number]>;
  sweep?: SweepOutcome;
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

function formatTable(rows: MetricComparison[], alpha: number): string {
  const f = (v: number | null | undefined) => (v === null || v === undefined ? '–' : fmtNumber(v));
  const heads = ['metric', 'A', 'B', `B − A [${+(100 * (1 - alpha)).toFixed(2)}%]`, 'p (corrected)', 'test'];
  const body = rows.map((r) => [
    r.metric,
    f(r.a) + fmtIntervalAfter(r.aInterval),
    f(r.b) + fmtIntervalAfter(r.bInterval),
    f(r.difference) + fmtIntervalAfter(r.interval),
    pText(r),
    r.test === 'paired sign-flip' ? `paired sign-flip, ${r.items} items` : 'none (no per-item scores)',
  ]);
  return textTable(heads, body);
}

/** The comparison's settings: the flags, the family from --metrics or else the sweep's declared one. */
const settingsOf = (opts: CompareOptions, declared: string[] | undefined): CompareSettings => {
  const family = opts.metrics ?? declared;
  return {
    alpha: opts.alpha,
    resamples: opts.resamples,
    correction: opts.correction,
    ...(family ? { family } : {}),
  };
};

/** `lea compare SWEEP`: its page's table (lib/pipeline/sweep.ts), in the terminal or as JSON. */
async function printSweep(store: ArtifactStore, sweepId: string, sweep: SweepOutcome, opts: CompareOptions) {
  const c = await loadSweepComparison(store, sweep, settingsOf(opts, sweep.metrics));
  if (opts.json) {
    console.log(JSON.stringify({ sweep: sweepId, ...c }, null, 2));
    return;
  }
  const failed = c.rows.filter((r) => r.status !== 'completed').length;
  console.log(
    `sweep ${sweepId}: ${c.rows.length} points over ${c.keys.join(', ')}${failed ? ` (${failed} failed)` : ''}\n\n` +
      `${sweepText(c)}\n\n${c.method}`,
  );
  if (c.detectability) console.log(c.detectability.text);
}

export function registerCompareCommand(program: Command): void {
  program
    .command('compare')
    .description(
      'compare two finished runs or suites: both values with intervals, the paired difference on shared test ' +
        'items with its interval and p-value, and the stages whose outputs differ (and why)',
    )
    .argument('<runA>', 'run or suite id (the reference), or a sweep id alone')
    .argument('[runB]', 'run or suite id (the candidate)')
    .addOption(
      new Option('--alpha <a>', 'level: intervals of differences are 1 - alpha')
        .argParser((v) => {
          const a = Number(v);
          if (!(a > 0 && a < 1)) throw new BadInputError(`--alpha ${v}: expected a number between 0 and 1`);
          return a;
        })
        .default(COMPARE_DEFAULTS.alpha),
    )
    .option(
      '--resamples <n>',
      'bootstrap resamples and random sign patterns',
      positiveInt,
      COMPARE_DEFAULTS.resamples,
    )
    .addOption(
      new Option('--correction <method>', 'over the family of metrics')
        .choices(CORRECTIONS)
        .default(COMPARE_DEFAULTS.correction),
    )
    .option(
      '--metrics <names>',
      "the family the correction runs over, comma-separated (default: every metric; a sweep's: its own)",
      parseMetricsArg,
    )
    .option('--json', 'print the comparison as JSON')
    .action(async (a: string, b: string | undefined, opts: CompareOptions) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      try {
        await withClient(async (client) => {
          const ra = await finished(client, a);
          if (b === undefined) {
            if (!ra.sweep)
              throw new BadInputError(`run '${a}' is not a sweep: name the run to compare it with`);
            await printSweep(store, a, ra.sweep, opts);
            return;
          }
          const rb = await finished(client, b);
          const compareSettings = settingsOf(opts, undefined);
          const metrics = compareMetrics(
            await comparedRun(store, a, ra),
            await comparedRun(store, b, rb),
            compareSettings,
          );
          const unknown = (opts.metrics ?? []).filter((m) => !metrics.some((r) => r.metric === m));
          if (unknown.length)
            throw new BadInputError(`--metrics: ${unknown.join(', ')}: neither run has this metric`);
          const stages = stageDifferences(
            await provenance(client, store, ra),
            await provenance(client, store, rb),
            choiceCauses(await choicesOf(client, a, ra), await choicesOf(client, b, rb)),
          );
          const method = comparisonMethod(
            compareSettings,
            metrics.filter((m) => m.pAdjusted !== undefined).length,
          );
          const detectable = rowsDetectability(metrics, compareSettings);
          if (opts.json) {
            console.log(
              JSON.stringify({ a, b, method, detectability: detectable, metrics, stages }, null, 2),
            );
            return;
          }
          console.log(`A ${a}\nB ${b}\n\n${formatTable(metrics, opts.alpha)}\n\n${method}`);
          if (detectable) console.log(detectable.text);
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
