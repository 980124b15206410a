/**
 * A reproduction run: the stages of a plan (built from the config before the run starts) executed as a DAG.
 * A stage starts once its inputs exist, so independent stages (the fMRI and image sides) run in parallel.
 * Every stage is one `runStage` activity on its queue (cpu or gpu); the activity skips it when its cache key
 * already has an artifact. Queries expose per-stage progress, signals pause and resume, memo and search
 * attributes make runs findable in the Web UI, and a baseline (if given) turns the metrics into a verdict.
 */
import {
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { JudgeActivities } from '../activities/judge.js';
import type { StageActivities, StageRequest } from '../activities/stage-runner.js';
import {
  downstreamClosure,
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
  codeVersion: string;
  taskQueues: { cpu: string; gpu: string };
  plan: StagePlan[];
  /** Stages to recompute even when cached; everything downstream of them is recomputed too. */
  force: string[];
  /** Which stage's summary holds the run's metrics. */
  metricsStage: string;
  baseline?: { source: string; text: string };
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
}

export const progressQuery = defineQuery<RunProgress>('progress');
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

export async function reproductionWorkflow(input: ReproductionInput): Promise<ReproductionResult> {
  const runId = workflowInfo().workflowId;
  let paused = false;
  let metrics: Record<string, number> = {};
  let verdict: Verdict | null = null;
  const records = new Map<string, StageRecord>(
    input.plan.map((s) => [
      s.name,
      {
        name: s.name,
        queue: s.queue,
        status: 'pending',
        cached: false,
        startedAt: null,
        finishedAt: null,
        seconds: null,
        output: null,
        summary: {},
        error: null,
      },
    ]),
  );
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
      stages: stages().map((r) => ({ name: r.name, status: r.status, cached: r.cached, seconds: r.seconds })),
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
    const { runStage } = proxyActivities<StageActivities>({
      taskQueue: input.taskQueues[plan.queue],
      startToCloseTimeout: `${plan.timeoutMinutes} minutes`,
      heartbeatTimeout: `${plan.heartbeatSeconds} seconds`,
      retry: {
        maximumAttempts: plan.maxAttempts,
        initialInterval: '2 seconds',
        nonRetryableErrorTypes: NON_RETRYABLE_ERRORS,
      },
    });
    Object.assign(record, { status: 'running', startedAt: new Date().toISOString() });
    publish();
    const request: StageRequest = {
      runId,
      stage: plan.name,
      impl: plan.impl,
      config: plan.config,
      inputs,
      force: forced.has(plan.name),
    };
    try {
      const out = await runStage(request);
      Object.assign(record, {
        status: out.cached ? 'cached' : 'completed',
        cached: out.cached,
        seconds: out.seconds,
        output: out.ref,
        summary: out.summary,
        finishedAt: new Date().toISOString(),
      });
      return out;
    } catch (err) {
      Object.assign(record, {
        status: isCancellation(err) ? 'cancelled' : 'failed',
        error:
          err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err),
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
    const judged = await judgeRun({ runId, configName: input.configName, metrics, baseline: input.baseline });
    verdict = judged;
    upsertSearchAttributes({ LeaVerdict: [judged.verdict] });
  }
  upsertMemo({ metrics, verdict: verdict?.verdict ?? null });
  return { stages: stages(), metrics, verdict };
}
