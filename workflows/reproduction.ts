/**
 * A reproduction run: the stages of a plan (built from the config before the run starts) executed as a DAG.
 * A stage starts once its inputs exist, so independent stages (the fMRI and image sides) run in parallel.
 * A stage whose cache key already has an artifact is skipped; otherwise its `runStage` activity runs on its
 * queue (cpu or gpu) inside a child workflow named by the cache key, so concurrent runs compute it once. Queries expose per-stage progress, signals pause and resume, memo and search
 * attributes make runs findable in the Web UI, and a baseline (if given) turns the metrics into a verdict.
 */
import {
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  executeChild,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { JudgeActivities } from '../activities/judge.js';
import type { ReportActivities } from '../activities/report.js';
import type { ArtifactRef } from '../lib/storage/artifact-store.js';
import type { StageActivities, StageRequest } from '../activities/stage-runner.js';
import {
  downstreamClosure,
  pendingStage,
  type StageOutcome,
  type StagePlan,
  type StageRecord,
} from '../lib/pipeline/run-record.js';
import type { Verdict } from '../lib/pipeline/regression.js';
import { NON_RETRYABLE_ERRORS } from './retry.js';

export interface ReproductionInput {
  configName: string;
  configFile: string;
  dataset: string;
  subject: string;
  /** The run's seed when it is a member of a seed suite (its row label there). */
  seed?: number;
  /** The run's point (its label) when it is a member of a sweep. */
  point?: string;
  /** The upstream choices the run takes (lib/config/upstream-choices.ts), for its memo when a suite starts it. */
  choices?: Record<string, string>;
  codeVersion: string;
  taskQueues: { cpu: string; gpu: string };
  plan: StagePlan[];
  /** Stages to recompute even when cached; everything downstream of them is recomputed too. */
  force: string[];
  /** Which stage's summary holds the run's metrics. */
  metricsStage: string;
  baseline?: { source: string; text: string };
  /** Plans without the decode/encode/metrics stages (tests of the machinery) have nothing to report. */
  skipReport?: boolean;
}

export interface RunProgress {
  paused: boolean;
  stages: StageRecord[];
  metrics: Record<string, number>;
  verdict: Verdict | null;
}

export interface ReproductionResult {
  stages: StageRecord[];
  metrics: Record<string, number>;
  verdict: Verdict | null;
  /** The rendered report (runs/<run>/report); `lea report RUN --out DIR` writes it to a folder. */
  report: ArtifactRef | null;
}

export const progressQuery = defineQuery<RunProgress>('progress');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

export async function reproductionWorkflow(input: ReproductionInput): Promise<ReproductionResult> {
  const runId = workflowInfo().workflowId;
  let paused = false;
  let metrics: Record<string, number> = {};
  let verdict: Verdict | null = null;
  const records = new Map<string, StageRecord>(input.plan.map((s) => [s.name, pendingStage(s)]));
  const stages = () => [...records.values()];
  setHandler(progressQuery, () => ({ paused, stages: stages(), metrics, verdict }));
  setHandler(pauseSignal, () => void (paused = true));
  setHandler(resumeSignal, () => void (paused = false));
  upsertSearchAttributes({
    LeaConfig: [input.configName],
    LeaDataset: [input.dataset],
    LeaSubject: [input.subject],
    LeaCodeVersion: [input.codeVersion],
  });
  const publish = () =>
    upsertMemo({
      stages: stages().map((r) => ({
        name: r.name,
        status: r.status,
        cached: r.cached,
        seconds: r.seconds,
        ...(r.error ? { error: r.error } : {}),
      })),
    });

  const forced = downstreamClosure(input.plan, input.force);
  const outcomes = new Map<string, Promise<StageOutcome>>();

  const runOne = async (plan: StagePlan): Promise<StageOutcome> => {
    const inputs = Object.fromEntries(
      await Promise.all(
        Object.entries(plan.needs).map(
          async ([name, from]) => [name, (await outcomes.get(from)!).ref] as const,
        ),
      ),
    );
    await condition(() => !paused);
    const record = records.get(plan.name)!;
    const request: StageRequest = {
      runId,
      stage: plan.name,
      impl: plan.impl,
      config: plan.config,
      inputs,
      ...(plan.weights ? { weights: plan.weights } : {}),
      force: forced.has(plan.name),
      ...(plan.dependencyWaitMinutes ? { dependencyWaitMinutes: plan.dependencyWaitMinutes } : {}),
    };
    Object.assign(record, { status: 'running', startedAt: new Date().toISOString() });
    publish();
    try {
      const out = await computeOnce(plan, request, input.taskQueues, (id) => {
        record.childWorkflowId = id;
      });
      Object.assign(record, {
        status: out.cached ? 'cached' : 'completed',
        cached: out.cached,
        seconds: out.seconds,
        output: out.ref,
        summary: out.summary,
        ...(out.attempts ? { attempts: out.attempts } : {}),
        finishedAt: new Date().toISOString(),
      });
      return out;
    } catch (err) {
      Object.assign(record, {
        status: isCancellation(err) ? 'cancelled' : 'failed',
        error: rootMessage(err),
        finishedAt: new Date().toISOString(),
      });
      throw err;
    } finally {
      publish();
    }
  };

  for (const plan of input.plan) {
    const outcome = runOne(plan);
    outcome.catch(() => undefined); // awaited below; a failed stage fails the run there
    outcomes.set(plan.name, outcome);
  }
  try {
    await Promise.all(outcomes.values());
  } catch (err) {
    // Let running siblings finish their current attempt's bookkeeping, then fail the run with the first error.
    await CancellationScope.nonCancellable(() => Promise.allSettled(outcomes.values()));
    throw err;
  }

  const summary = records.get(input.metricsStage)?.summary ?? {};
  metrics = Object.fromEntries(
    Object.entries(summary).filter((e): e is [string, number] => typeof e[1] === 'number'),
  );
  if (input.baseline) {
    const { judgeRun } = proxyActivities<JudgeActivities>({
      taskQueue: input.taskQueues.cpu,
      startToCloseTimeout: '2 minutes',
      retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
    });
    const scores = records.get(input.metricsStage)?.output;
    const judged = await judgeRun({
      runId,
      configName: input.configName,
      metrics,
      ...(scores ? { scores } : {}),
      baseline: input.baseline,
    });
    verdict = judged;
    upsertSearchAttributes({ LeaVerdict: [judged.verdict] });
  }
  if (input.skipReport) {
    upsertMemo({ metrics, verdict: verdict?.verdict ?? null });
    return { stages: stages(), metrics, verdict, report: null };
  }
  const { reportRun } = proxyActivities<ReportActivities>({
    taskQueue: input.taskQueues.cpu,
    startToCloseTimeout: '30 minutes',
    retry: { maximumAttempts: 3, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
  });
  const report = await reportRun({
    runId,
    configName: input.configName,
    configFile: input.configFile,
    dataset: input.dataset,
    subject: input.subject,
    codeVersion: input.codeVersion,
    startedAt: workflowInfo().startTime.toISOString(),
    stages: stages(),
    metrics,
    verdict,
    ...(input.baseline ? { baseline: input.baseline } : {}),
  });
  upsertMemo({ metrics, verdict: verdict?.verdict ?? null, report: report.key });
  return { stages: stages(), metrics, verdict, report };
}

export function rootMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(err);
}

/**
 * A probe reads a few manifests; it heartbeats, so a task lost on its way to a worker is retried after 30 s,
 * and it may wait out an S3 outage as long as its stage would.
 */
const probeActivity = (plan: StagePlan) =>
  proxyActivities<StageActivities>({
    startToCloseTimeout: `${(plan.dependencyWaitMinutes ?? 0) + 2} minutes`,
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
  }).probeStage;

/**
 * Computes a stage at most once across all runs: its work happens in a child workflow whose id is the stage's
 * cache key, so a second run needing the same output while the first computes it waits for that artifact
 * (on durable timers) instead of computing it twice. A cached output is returned without a child.
 */
async function computeOnce(
  plan: StagePlan,
  request: StageRequest,
  queues: ReproductionInput['taskQueues'],
  onChild: (workflowId: string) => void,
): Promise<StageOutcome> {
  const probeStage = probeActivity(plan);
  const probe = await probeStage(request);
  if (probe.cached && !request.force) return probe.cached;
  const workflowId = `stage-${plan.impl}-${probe.cacheKey.slice(0, 40)}`;
  onChild(workflowId);
  for (;;) {
    try {
      return await executeChild(stageWorkflow, {
        workflowId,
        taskQueue: queues.cpu,
        args: [plan, request, queues],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      await sleep('5 seconds');
      const now = await probeStage({ ...request, force: false });
      if (now.cached) return now.cached;
    }
  }
}

/** One stage's computation: the runStage activity on the stage's queue, with its timeouts and retries. */
export async function stageWorkflow(
  plan: StagePlan,
  request: StageRequest,
  queues: ReproductionInput['taskQueues'],
): Promise<StageOutcome> {
  const { runStage } = proxyActivities<StageActivities>({
    taskQueue: queues[plan.queue],
    startToCloseTimeout: `${plan.timeoutMinutes} minutes`,
    heartbeatTimeout: `${plan.heartbeatSeconds} seconds`,
    retry: {
      maximumAttempts: plan.maxAttempts,
      initialInterval: '2 seconds',
      nonRetryableErrorTypes: NON_RETRYABLE_ERRORS,
    },
  });
  return runStage(request);
}
