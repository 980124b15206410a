/**
 * A suite: several reproduction runs started as one (`lea run configs/paper/god-sbj_*.yaml`), the way the paper's
 * tables are laid out: a row per subject and their mean. Each member is an ordinary reproduction run (a child
 * workflow with its own record and report); stages they share, such as a dataset's image side, are computed
 * once, because stage work is keyed by its cache key (reproduction.ts computeOnce). When every member has
 * ended, the mean is judged against the baseline (if given) and the suite's report is stored. A sweep
 * (`lea sweep`) is a suite whose members are the points of a grid: its report compares each point with the
 * baseline point instead (lib/pipeline/sweep.ts).
 */
import {
  ParentClosePolicy,
  isCancellation,
  patched,
  proxyActivities,
  startChild,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { JudgeActivities } from '../activities/judge.js';
import type { ReportActivities } from '../activities/report.js';
import type { PooledScores, ScoresActivities } from '../activities/scores.js';
import type { Verdict } from '../lib/pipeline/regression.js';
import { scoresRefOf } from '../lib/pipeline/run-scores.js';
import { meanMetrics, sdMetrics, type SuiteMember } from '../lib/pipeline/suite.js';
import type { SweepOutcome, SweepPlan, SweepPointOutcome } from '../lib/pipeline/sweep.js';
import type { IntervalSettings } from '../lib/stats/bootstrap.js';
import type { ArtifactRef } from '../lib/storage/artifact-store.js';
import {
  reproductionWorkflow,
  rootMessage,
  type ReproductionInput,
  type ReproductionResult,
} from './reproduction.js';
import { NON_RETRYABLE_ERRORS } from './retry.js';

export interface SuiteInput {
  /** What the suite is a suite of (its search attribute LeaConfig: the member configs' names joined). */
  name: string;
  codeVersion: string;
  /** Each member's reproduction input; its run id is the config's name and the suite's id after `suite-`. */
  members: ReproductionInput[];
  /** Judges the mean over the members. */
  baseline?: { source: string; text: string };
  /** A sweep: the points the members belong to (each member's `point` is its point's label). */
  sweep?: SweepPlan;
}

export interface SuiteResult {
  members: SuiteMember[];
  /** The mean over the members (named as a run's metrics, so a later verdict compares it as a last good run). */
  metrics: Record<string, number>;
  /** The standard deviation over the members (subjects, or seeds). */
  sd?: Record<string, number>;
  /** The members' scores pooled per test item (runs/<suite>/scores), and the mean's intervals over items. */
  scores?: ArtifactRef | null;
  metricIntervals?: Record<string, [number, number]>;
  intervalMethod?: string;
  verdict: Verdict | null;
  report: ArtifactRef | null;
  /** A sweep: each point's runs and what its comparison reads. */
  sweep?: SweepOutcome;
}

/** A member's run id: unique per suite run, also for a schedule's (whose suite ids Temporal makes unique). */
export const memberRunId = (suiteId: string, configName: string): string =>
  `${configName}-${suiteId.replace(/^(suite|sweep)-/, '')}`;

export async function suiteWorkflow(input: SuiteInput): Promise<SuiteResult> {
  const suiteId = workflowInfo().workflowId;
  const members: SuiteMember[] = input.members.map((m) => ({
    runId: memberRunId(suiteId, m.configName),
    configName: m.configName,
    subject: m.subject,
    ...(m.seed === undefined ? {} : { seed: m.seed }),
    ...(m.point === undefined ? {} : { point: m.point }),
    dataset: m.dataset,
    status: 'running',
    metrics: {},
  }));
  upsertSearchAttributes({
    LeaConfig: [input.name],
    // Keyword attributes hold one value: a suite's datasets and subjects joined, as its name joins its configs
    LeaDataset: [[...new Set(members.map((m) => m.dataset))].join('+')],
    LeaSubject: [members.map((m) => m.subject).join('+')],
    LeaCodeVersion: [input.codeVersion],
  });
  const suiteMemo = members.map(({ runId, subject, seed, point }) => ({
    runId,
    subject,
    ...(seed === undefined ? {} : { seed }),
    ...(point === undefined ? {} : { point }),
  }));
  upsertMemo({ suite: suiteMemo });

  const scoresOf: (ArtifactRef | undefined)[] = [];
  const resultOf: (ReproductionResult | undefined)[] = [];
  // Members start together: the first to need a shared stage computes it, the others wait for its artifact.
  await Promise.all(
    input.members.map(async (runInput, i) => {
      const member = members[i]!;
      try {
        const child = await startChild(reproductionWorkflow, {
          workflowId: member.runId,
          args: [runInput],
          memo: {
            config: runInput.configFile,
            name: runInput.configName,
            pipeline: 'reproduction',
            partOf: suiteId,
            ...(runInput.choices ? { choices: runInput.choices } : {}),
          },
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        });
        const result: ReproductionResult = await child.result();
        Object.assign(member, { status: 'completed', metrics: result.metrics });
        scoresOf[i] = scoresRefOf(result);
        resultOf[i] = result;
      } catch (err) {
        if (isCancellation(err)) throw err;
        Object.assign(member, { status: 'failed', error: rootMessage(err) });
      }
    }),
  );

  const { poolSuiteScores } = proxyActivities<ScoresActivities>({
    startToCloseTimeout: '10 minutes',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
  });
  const metricsPlan = input.members[0]!.plan.find((p) => p.name === input.members[0]!.metricsStage);
  const intervals = (metricsPlan?.config as { intervals: IntervalSettings }).intervals;
  const { reportSuite, reportSweep } = proxyActivities<ReportActivities>({
    startToCloseTimeout: '5 minutes',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
  });
  // what the page's header shows
  const about = {
    suiteId,
    name: input.name,
    codeVersion: input.codeVersion,
    startedAt: workflowInfo().startTime.toISOString(),
  };
  if (input.sweep) {
    const sweep = await sweepOutcome(input.sweep, members, resultOf, (runs, point) =>
      poolSuiteScores({ suiteId: `${suiteId}/points/${point}`, runs, intervals }),
    );
    const report = await reportSweep({ ...about, sweep });
    upsertMemo({ suite: suiteMemo, verdict: null, report: report.key });
    throwIfFailed(members);
    return { members, metrics: meanMetrics(members), verdict: null, report, sweep };
  }

  const mean = meanMetrics(members);
  const sd = sdMetrics(members);
  const scored = scoresOf.filter((r): r is ArtifactRef => r !== undefined);
  let pooled: PooledScores | null = null;
  // Suites recorded before pooled scores replay without this activity.
  if (patched('suite-pooled-scores') && scored.length > 0) {
    pooled = await poolSuiteScores({ suiteId, runs: scored, intervals });
  }
  let verdict: Verdict | null = null;
  if (input.baseline) {
    const { judgeRun } = proxyActivities<JudgeActivities>({
      startToCloseTimeout: '2 minutes',
      retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
    });
    verdict = await judgeRun({
      runId: suiteId,
      configName: input.name,
      metrics: mean,
      ...(pooled?.scores ? { scores: pooled.scores } : {}),
      baseline: input.baseline,
    });
    upsertSearchAttributes({ LeaVerdict: [verdict.verdict] });
  }
  const report = await reportSuite({
    ...about,
    members,
    mean,
    sd,
    ...(pooled ? { metricIntervals: pooled.metricIntervals, intervalMethod: pooled.intervalMethod } : {}),
    verdict,
    ...(input.baseline ? { baseline: input.baseline } : {}),
  });
  upsertMemo({ suite: suiteMemo, verdict: verdict?.verdict ?? null, report: report.key });
  throwIfFailed(members);
  return {
    members,
    metrics: mean,
    sd,
    ...pooled,
    verdict,
    report,
  };
}

/** A suite with a failed run fails, once its report says which and why. */
function throwIfFailed(members: SuiteMember[]): void {
  const failed = members.filter((m) => m.status !== 'completed');
  if (failed.length)
    throw new Error(
      `${failed.length} of ${members.length} runs failed: ${failed.map((m) => m.runId).join(', ')}`,
    );
}

/**
 * Each point of a sweep with its runs: what its comparison reads is a single run's metrics stage (its scores and
 * intervals), or the pooled scores of its seeds' runs. A point with a failed run is failed, with that run's error.
 */
async function sweepOutcome(
  plan: SweepPlan,
  members: SuiteMember[],
  results: (ReproductionResult | undefined)[],
  pool: (runs: ArtifactRef[], point: string) => Promise<PooledScores>,
): Promise<SweepOutcome> {
  const points: SweepPointOutcome[] = [];
  for (const point of plan.points) {
    const of = members.flatMap((m, i) => (m.point === point.label ? [{ m, result: results[i] }] : []));
    const runIds = of.map(({ m }) => m.runId);
    const failed = of.find(({ m }) => m.status !== 'completed');
    if (failed) {
      points.push({ ...point, runIds, status: 'failed', error: failed.m.error ?? failed.m.status });
      continue;
    }
    const metricsStages = of.map(({ result }) => result!.stages.find((s) => s.name === 'metrics')!);
    let result: SweepPointOutcome['result'];
    if (of.length === 1) result = { metrics: of[0]!.m.metrics, stages: metricsStages };
    else {
      const refs = metricsStages.flatMap((s) => (s.output ? [s.output] : []));
      result = { metrics: meanMetrics(of.map(({ m }) => m)), ...(await pool(refs, point.name)) };
    }
    points.push({ ...point, runIds, status: 'completed', result });
  }
  return { ...plan, points };
}
