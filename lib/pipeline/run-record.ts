/**
 * The shapes a run is described by: the stage plan a workflow executes, and the records `lea status`,
 * `lea runs` and `--json` print. Pure types and functions (also bundled into workflows).
 */
import type { ArtifactRef } from '../storage/artifact-store.js';

export type Queue = 'cpu' | 'gpu';

/** One stage of a run, as planned from the config before the run starts. */
export interface StagePlan {
  /** Unique name in the run, e.g. `train_fmri_ae`. */
  name: string;
  /** Which implementation runs it (activities/stages). */
  impl: string;
  queue: Queue;
  /** Input name → the stage whose output it is. */
  needs: Record<string, string>;
  /** The stage's own config section: part of its cache key. */
  config: unknown;
  /** Input name → imported weights name; the stage runner resolves them (their content enters the cache key). */
  weights?: Record<string, string>;
  timeoutMinutes: number;
  heartbeatSeconds: number;
  maxAttempts: number;
  /** How long the stage waits out an S3 outage without spending an attempt (absent in older runs). */
  dependencyWaitMinutes?: number;
}

export type StageStatus = 'pending' | 'running' | 'completed' | 'cached' | 'failed' | 'cancelled';

export interface StageRecord {
  name: string;
  queue: Queue;
  status: StageStatus;
  cached: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  seconds: number | null;
  output: ArtifactRef | null;
  /** What the stage reported about itself (final loss, metrics, sizes). */
  summary: Record<string, number | string>;
  error: string | null;
  /** The child workflow that computes the stage (possibly another run's, computing the same cache key). */
  childWorkflowId?: string;
  /** Each attempt of a stage this run computed (absent in older runs and for cached stages). */
  attempts?: StageAttempt[];
}

/**
 * One attempt of a stage's activity. The stage runner carries the list in its heartbeat details, which
 * Temporal hands to the next attempt, so the attempt that completes knows the earlier ones.
 */
export interface StageAttempt {
  attempt: number;
  /** The worker process, as `pid@host` (Temporal's default worker identity). */
  worker: string;
  startedAt: string;
  /** When it ended, or its last heartbeat when it was lost. */
  endedAt: string;
  /** The checkpoint step a training attempt resumed from (0: from scratch). */
  resumedFromStep?: number;
  /** The last step it reported. */
  step?: number;
  /** `completed`, `failed: <reason>`, `lost: ...` (no word after endedAt), or `running`. */
  ended: string;
}

export interface StageOutcome {
  ref: ArtifactRef;
  cached: boolean;
  /** Summed over the attempts. */
  seconds: number;
  summary: Record<string, number | string>;
  attempts?: StageAttempt[];
}

export type RunStatus =
  'running' | 'completed' | 'failed' | 'cancelled' | 'terminated' | 'timed_out' | 'unknown';

/** The stable JSON record of `lea status --json` / `lea runs --json`. */
export interface RunRecord {
  runId: string;
  config: string;
  /**
   * The numerical choices where the authors' code and ours differ (lib/config/upstream-choices.ts), config field →
   * the value this run took; absent for runs started before they were choices.
   */
  choices?: Record<string, string>;
  status: RunStatus;
  startedAt: string | null;
  finishedAt: string | null;
  stages: (Pick<StageRecord, 'name' | 'cached' | 'seconds'> & {
    /**
     * A running stage whose activity waits for a worker is `queued`; one waiting to retry is `retrying`; one
     * whose worker has not heartbeated for over twice its heartbeat interval is `stale`.
     */
    status: StageStatus | 'queued' | 'retrying' | 'stale';
    /** While queued or retrying: the task queue the stage waits on. */
    taskQueue?: string;
    /** While queued or retrying and no worker polls that queue: the command that starts one. */
    startWorker?: string;
    /** While its activity runs: seconds since its worker last heartbeated (or started it). */
    heartbeatAgeSeconds?: number;
    /** The activity's attempt while running, when it is not the first. */
    attempt?: number;
    /** While retrying: why the last attempt failed. */
    lastFailure?: string;
    step?: number;
    totalSteps?: number;
    loss?: number;
    /** While the stage waits for a server to answer again (`s3`): which, and since when (ISO time). */
    waitingFor?: string;
    waitingSince?: string;
    /** Why the stage failed (its innermost error message). */
    error?: string;
    attempts?: StageAttempt[];
    /** Imported networks the stage read: input name → "name (kind, sha256 of the source file)". */
    weights?: Record<string, string>;
  })[];
  /**
   * A running run whose workflow task queue no worker polls (nothing advances it, not even a cancel): the
   * queue, and the command that starts a worker for it.
   */
  noWorker?: { taskQueue: string; startWorker?: string };
  /** Why a failed run failed, as the CLI prints it (the cause chain down to the stage's reason). */
  error?: string;
  metrics: Record<string, number>;
  /** Each item-mean metric's bootstrap interval [low, high] (lib/metrics/intervals.ts), and how it was computed. */
  metricIntervals?: Record<string, [number, number]>;
  intervalMethod?: string;
  /** Each metric's one-line definition; `paper` only when computed as the paper computes it. */
  metricDefinitions?: Record<string, { definition: string; paper: boolean }>;
  verdict: 'pass' | 'regressed' | null;
  /** What regressed, one line per metric (`lea status` always sets it; empty unless regressed). */
  regressions?: string[];
  /** Every comparison of the verdict, `ok` or `regressed`, with its test, difference, interval and p-value. */
  comparisons?: string[];
  /** How the verdict's tests were made and corrected. */
  verdictMethod?: string;
  /** A suite: the standard deviation of each metric over its runs (subjects or seeds). */
  sd?: Record<string, number>;
  /** A suite (workflows/suite.ts): its runs' records, each with its subject; `metrics` are their mean. */
  members?: (RunRecord & { subject: string; seed?: number; point?: string })[];
}

/** A planned stage that has not started: what the workflow's records and `lea status` begin from. */
export function pendingStage(p: Pick<StagePlan, 'name' | 'queue'>): StageRecord {
  return {
    name: p.name,
    queue: p.queue,
    status: 'pending',
    cached: false,
    startedAt: null,
    finishedAt: null,
    seconds: null,
    output: null,
    summary: {},
    error: null,
  };
}

/** One line per attempt, as `lea status` and the report print it. */
export function describeAttempt(a: StageAttempt): string {
  const steps =
    a.step !== undefined
      ? `, steps ${a.resumedFromStep ?? 0}-${a.step}${a.resumedFromStep ? ' (resumed)' : ''}`
      : '';
  return `attempt ${a.attempt} on ${a.worker}: ${a.startedAt} to ${a.endedAt}${steps}, ${a.ended}`;
}

/** Every stage downstream of the given ones, them included (what `--force STAGE` recomputes). */
export function downstreamClosure(plan: StagePlan[], roots: string[]): Set<string> {
  const out = new Set(roots);
  let grew = true;
  while (grew) {
    grew = false;
    for (const s of plan) {
      if (!out.has(s.name) && Object.values(s.needs).some((n) => out.has(n))) {
        out.add(s.name);
        grew = true;
      }
    }
  }
  return out;
}

/** Checks that every need names an earlier stage (so the plan is a DAG in run order). */
export function checkPlan(plan: StagePlan[]): string | null {
  const seen = new Set<string>();
  for (const s of plan) {
    if (seen.has(s.name)) return `stage '${s.name}' appears twice`;
    for (const [input, from] of Object.entries(s.needs)) {
      if (!seen.has(from))
        return `stage '${s.name}' input '${input}' needs '${from}', which does not run before it`;
    }
    seen.add(s.name);
  }
  return null;
}
