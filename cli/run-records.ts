/**
 * Run records for `lea status`, `lea runs` and `--json`: built from Temporal alone (describe, memo, the
 * progress query of a running run, the result of a finished one), so any machine with access sees the same.
 */
import { defaultPayloadConverter, type Client, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { BadInputError, causeChain } from '../lib/errors.js';
import { metricDefinitions } from '../lib/metrics/definitions.js';
import { intervalsOfSummary } from '../lib/metrics/intervals.js';
import { describeFailure, type Verdict } from '../lib/pipeline/regression.js';
import {
  describeAttempt,
  pendingStage,
  type RunRecord,
  type RunStatus,
  type StageRecord,
} from '../lib/pipeline/run-record.js';
import { DEFAULT_RUNTIME } from '../lib/pipeline/plan.js';
import type { ReproductionInput, ReproductionResult, RunProgress } from '../workflows/reproduction.js';
import type { SuiteResult } from '../workflows/suite.js';
import { meanMetrics, memberLabel } from '../lib/pipeline/suite.js';
import { suiteText } from '../lib/report/suite.js';
import { pollerCache, workerCommand, type TaskKind } from './task-queues.js';

const STATUS: Record<string, RunStatus> = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
  CONTINUED_AS_NEW: 'completed',
};

interface LiveProgress {
  step?: number;
  totalSteps?: number;
  loss?: number;
  /** The stage activity is scheduled but no worker has started it (first attempt or a retry). */
  waiting?: boolean;
  attempt?: number;
  lastFailure?: string;
  /** The stage waits for a server to answer again (`s3`), since this time (stage-runner's heartbeat). */
  waitingFor?: string;
  waitingSince?: string;
  /** While waiting: the activity's task queue, and the command that starts a worker when none polls it. */
  taskQueue?: string;
  startWorker?: string;
  /** While running: seconds since the last heartbeat (or the start), and past how many it counts as stale. */
  heartbeatAge?: number;
  staleAfter?: number;
}

const STARTED = proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;
const timeMs = (t?: { seconds?: unknown; nanos?: number | null } | null) =>
  t?.seconds != null ? Number(t.seconds) * 1000 + (t.nanos ?? 0) / 1e6 : undefined;

/**
 * Stale: no heartbeat for twice the interval at which the server hears from a stage's worker, so a stopped or
 * dead worker shows before its heartbeat timeout runs out. The stage runner heartbeats every third of the
 * timeout (at least 1 s; activities/stage-runner.ts), and the SDK sends at most one per throttle interval
 * (0.8 of the timeout, at most 5 s: maxHeartbeatThrottleInterval in workers/worker.ts).
 */
const staleAfterSeconds = (timeout: number) => 2 * Math.max(1, timeout / 3, Math.min(0.8 * timeout, 5));

const SCHEDULED = proto.temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED;

/**
 * What the stage activities running inside the run's stage child workflows report: heartbeat details (step,
 * loss, ...), whether the activity waits for a worker, its attempt and last failure. Keyed by stage name,
 * known from the stage records (or, in a memo without child ids, from the heartbeat details).
 */
async function liveProgress(
  client: Client,
  handle: WorkflowHandle,
  stages: StageRecord[],
  polls: (queue: string, kind: TaskKind) => Promise<boolean> = pollerCache(client),
): Promise<Map<string, LiveProgress>> {
  const byChild = new Map<string, string>();
  for (const s of stages)
    if (s.status === 'running' && s.childWorkflowId) byChild.set(s.childWorkflowId, s.name);
  if (byChild.size === 0) {
    for (const child of (await handle.describe()).raw.pendingChildren ?? [])
      if (child.workflowId) byChild.set(child.workflowId, '');
  }
  const out = new Map<string, LiveProgress>();
  // The run's own pending activities first: a stage's probe (before its child starts) may be waiting for S3.
  for (const [childId, stageName] of [[handle.workflowId, ''] as const, ...byChild]) {
    let pending;
    try {
      pending = (await client.workflow.getHandle(childId).describe()).raw.pendingActivities ?? [];
    } catch {
      continue; // the child has not started yet or is already gone
    }
    for (const a of pending) {
      const payload = a.heartbeatDetails?.payloads?.[0];
      const details = payload ? defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload) : {};
      const stage = typeof details?.stage === 'string' ? details.stage : stageName;
      if (!stage) continue;
      const attempt = a.attempt ?? 1;
      const queue = a.activityOptions?.taskQueue?.name ?? undefined;
      const waiting = a.state === SCHEDULED;
      const lastSign = timeMs(a.lastHeartbeatTime) ?? timeMs(a.lastStartedTime);
      const timeoutMs = timeMs(a.activityOptions?.heartbeatTimeout);
      out.set(stage, {
        ...(details as LiveProgress),
        waiting,
        ...(waiting && queue ? { taskQueue: queue } : {}),
        ...(waiting && queue && !(await polls(queue, 'activity'))
          ? { startWorker: workerCommand(queue) ?? `a worker polling '${queue}'` }
          : {}),
        ...(a.state === STARTED && lastSign !== undefined
          ? {
              heartbeatAge: Math.max(0, Math.round((Date.now() - lastSign) / 1000)),
              staleAfter: staleAfterSeconds(timeoutMs ? timeoutMs / 1000 : DEFAULT_RUNTIME.heartbeatSeconds),
            }
          : {}),
        ...(attempt > 1 ? { attempt } : {}),
        ...(attempt > 1 && a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
      });
    }
  }
  return out;
}

function stageRows(stages: StageRecord[], live: Map<string, LiveProgress>): RunRecord['stages'] {
  return stages.map((s) => {
    const p = live.get(s.name);
    const stale = p?.heartbeatAge !== undefined && p.heartbeatAge > (p.staleAfter ?? Infinity);
    const status =
      s.status !== 'running'
        ? s.status
        : p?.waiting
          ? p.attempt
            ? 'retrying'
            : 'queued'
          : stale
            ? 'stale'
            : s.status;
    return {
      name: s.name,
      status,
      cached: s.cached,
      seconds: s.seconds,
      ...(p?.attempt !== undefined ? { attempt: p.attempt } : {}),
      ...(p?.lastFailure !== undefined ? { lastFailure: p.lastFailure } : {}),
      ...(p?.step !== undefined ? { step: p.step } : {}),
      ...(p?.totalSteps !== undefined ? { totalSteps: p.totalSteps } : {}),
      ...(p?.loss !== undefined ? { loss: p.loss } : {}),
      ...(s.status === 'running' && p?.taskQueue ? { taskQueue: p.taskQueue } : {}),
      ...(s.status === 'running' && p?.startWorker ? { startWorker: p.startWorker } : {}),
      ...(s.status === 'running' && p?.heartbeatAge !== undefined
        ? { heartbeatAgeSeconds: p.heartbeatAge }
        : {}),
      ...(p?.waitingFor ? { waitingFor: p.waitingFor, waitingSince: p.waitingSince } : {}),
      ...(s.error ? { error: s.error } : {}),
      ...(s.attempts?.length ? { attempts: s.attempts } : {}),
      ...weightsOf(s),
    };
  });
}

/** The metrics stage's intervals (runs from before metrics stage version 3 have none). */
function intervalsOf(stages: StageRecord[]): Pick<RunRecord, 'metricIntervals' | 'intervalMethod'> {
  return intervalsOfSummary(stages.find((s) => s.name === 'metrics')?.summary ?? {}) ?? {};
}

/** What regressed, every comparison with its test, and how the tests were made. */
function verdictLines(
  verdict: Verdict | null,
): Pick<RunRecord, 'regressions' | 'comparisons' | 'verdictMethod'> {
  return {
    regressions: (verdict?.failures ?? []).map(describeFailure),
    ...(verdict?.checks
      ? {
          comparisons: verdict.checks.map(
            (c) => `${c.regressed ? 'regressed' : 'ok'}  ${describeFailure(c)}`,
          ),
        }
      : {}),
    ...(verdict?.method ? { verdictMethod: verdict.method } : {}),
  };
}

/** The `weights.<input>` entries the stage runner adds to a stage's summary. */
export function weightsOf(s: { summary?: Record<string, unknown> }): { weights?: Record<string, string> } {
  const used = Object.entries(s.summary ?? {}).filter(([k]) => k.startsWith('weights.'));
  return used.length ? { weights: Object.fromEntries(used.map(([k, v]) => [k.slice(8), String(v)])) } : {};
}

export async function runRecord(client: Client, runId: string): Promise<RunRecord> {
  const handle = client.workflow.getHandle(runId);
  const d = await handle.describe();
  const status = STATUS[d.status.name] ?? 'unknown';
  const memo = (d.memo ?? {}) as {
    config?: string;
    choices?: Record<string, string>;
    stages?: StageRecord[];
    metrics?: Record<string, number>;
    verdict?: string;
  };
  const record: RunRecord = {
    runId,
    config: memo.config ?? '',
    status,
    startedAt: d.startTime.toISOString(),
    finishedAt: d.closeTime?.toISOString() ?? null,
    stages: [],
    metrics: memo.metrics ?? {},
    verdict: memo.verdict === 'pass' || memo.verdict === 'regressed' ? memo.verdict : null,
    regressions: [],
    ...(memo.choices ? { choices: memo.choices } : {}),
  };
  if (d.type === 'suiteWorkflow') return suiteRecord(client, handle, record, memo as SuiteMemo);
  if (d.type !== 'reproductionWorkflow') return record;
  if (status === 'completed') {
    const result = (await handle.result()) as ReproductionResult;
    record.stages = stageRows(result.stages, new Map());
    record.metrics = result.metrics;
    Object.assign(record, intervalsOf(result.stages));
    record.verdict = result.verdict?.verdict ?? null;
    Object.assign(record, verdictLines(result.verdict));
  } else if (status === 'running') {
    const polls = pollerCache(client);
    let stages: StageRecord[] | undefined;
    // A query waits for a worker to answer it: ask only when one polls the run's queue, and not for long.
    if (await polls(d.taskQueue, 'workflow')) {
      try {
        const query = () => handle.query<RunProgress>('progress');
        stages = (await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, query)).stages;
      } catch {
        // The worker did not answer in time (it may have just died): fall back to the memo below.
      }
    } else {
      const startWorker = workerCommand(d.taskQueue);
      record.noWorker = { taskQueue: d.taskQueue, ...(startWorker ? { startWorker } : {}) };
    }
    // The memo holds the last published stage states; before the first, the plan's stages are all pending.
    stages ??= memo.stages?.length ? memo.stages : await plannedStages(handle);
    record.stages = stageRows(stages, await liveProgress(client, handle, stages, polls));
  } else {
    record.stages = stageRows(memo.stages ?? [], new Map());
    if (status === 'failed' || status === 'timed_out') {
      record.error = await handle.result().then(
        () => undefined,
        (err: unknown) => causeChain(err),
      );
    }
  }
  record.metricDefinitions = metricDefinitions(Object.keys(record.metrics));
  return record;
}

const QUERY_DEADLINE_MS = 5_000;

interface SuiteMemo {
  suite?: { runId: string; subject: string; seed?: number; point?: string }[];
}

/** A suite's record: each member's own record (a member not started yet shows as such), and their mean. */
async function suiteRecord(
  client: Client,
  handle: WorkflowHandle,
  record: RunRecord,
  memo: SuiteMemo,
): Promise<RunRecord> {
  const members: NonNullable<RunRecord['members']> = [];
  for (const m of memo.suite ?? []) {
    const member = await runRecord(client, m.runId).catch(() => undefined);
    members.push({
      ...(member ?? { ...record, runId: m.runId, config: '', stages: [], metrics: {}, verdict: null }),
      subject: m.subject,
      ...(m.seed === undefined ? {} : { seed: m.seed }),
      ...(m.point === undefined ? {} : { point: m.point }),
    });
  }
  record.members = members;
  record.metrics = meanMetrics(members);
  if (record.status === 'completed') {
    const result = (await handle.result()) as SuiteResult;
    Object.assign(record, verdictLines(result.verdict));
    if (result.sd) record.sd = result.sd;
    if (result.metricIntervals)
      Object.assign(record, {
        metricIntervals: result.metricIntervals,
        intervalMethod: result.intervalMethod,
      });
  } else if (record.status === 'failed') {
    record.error = await handle.result().then(
      () => undefined,
      (err: unknown) => causeChain(err),
    );
  }
  record.metricDefinitions = metricDefinitions(Object.keys(record.metrics));
  return record;
}

/** The input a workflow was started with (a run's plan, a suite's members), from its first history event. */
export async function startInput<T>(handle: WorkflowHandle): Promise<T | undefined> {
  const history = await handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  return payload ? defaultPayloadConverter.fromPayload<T>(payload) : undefined;
}

/** A run no worker has advanced yet: its plan's stages (from the workflow's input), all pending. */
async function plannedStages(handle: WorkflowHandle): Promise<StageRecord[]> {
  try {
    return ((await startInput<ReproductionInput>(handle))?.plan ?? []).map(pendingStage);
  } catch {
    return [];
  }
}

/** An unknown run as a bad input (exit 2); any other error as it is. */
export function runNotFound(runId: string, err: unknown): never {
  if ((err as Error).name === 'WorkflowNotFoundError') throw new BadInputError(`no run '${runId}'`);
  throw err;
}

export async function listRuns(client: Client, query?: string): Promise<RunRecord[]> {
  const ids: string[] = [];
  for await (const wf of client.workflow.list(query ? { query } : {})) {
    if (['reproductionWorkflow', 'suiteWorkflow', 'helloWorkflow'].includes(wf.type)) ids.push(wf.workflowId);
  }
  const records: RunRecord[] = [];
  for (const id of ids) records.push(await runRecord(client, id));
  return records.sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''));
}

/**
 * `lea run --wait`'s exit status, for scripts and CI (README "Exit codes"); 1 (internal error) and 2 (bad
 * input) are the CLI's own. A run that has not ended (or is unknown) is an internal error here.
 */
const EXIT_CODES: Partial<Record<RunStatus, number>> = {
  failed: 4,
  cancelled: 5,
  terminated: 5,
  timed_out: 5,
};

export function exitCodeOf(r: RunRecord): number {
  if (r.status === 'completed') return r.verdict === 'regressed' ? 3 : 0;
  return EXIT_CODES[r.status] ?? 1;
}

const waitingName = (dependency: string) => (dependency === 's3' ? 'S3' : dependency);

/** A suite: each run's record, then the metrics by subject with their mean (and the baseline's verdict). */
function formatSuite(r: RunRecord): string {
  const members = r.members ?? [];
  const lines = [
    `${r.runId}  suite of ${members.length} runs  ${r.status}  started ${r.startedAt}${r.finishedAt ? `  finished ${r.finishedAt}` : ''}`,
  ];
  for (const m of members) {
    if (m.point !== undefined) lines.push(`  point ${memberLabel(m)}`);
    lines.push(formatRecord(m).replace(/^/gm, m.point === undefined ? '  ' : '    '));
  }
  if (r.error) lines.push(`  error: ${r.error}`);
  const table = suiteText({
    members,
    mean: r.metrics,
    baseline: null,
    ...(r.sd ? { sd: r.sd } : {}),
    ...(r.metricIntervals ? { metricIntervals: r.metricIntervals } : {}),
  });
  lines.push('', table.replace(/^/gm, '  '));
  if (members.some((m) => m.point !== undefined))
    lines.push(`  each point against the baseline point: lea compare ${r.runId}`);
  if (r.intervalMethod) lines.push(`  intervals: ${r.intervalMethod}`);
  if (r.verdict) lines.push(`  verdict of the mean: ${r.verdict}`);
  lines.push(...verdictText(r));
  return lines.join('\n');
}

export function formatRecord(r: RunRecord): string {
  if (r.members) return formatSuite(r);
  const lines = [
    `${r.runId}  ${r.status}  config ${r.config}  started ${r.startedAt}${r.finishedAt ? `  finished ${r.finishedAt}` : ''}`,
  ];
  if (r.noWorker) {
    const start = r.noWorker.startWorker ? `: start one with \`${r.noWorker.startWorker}\`` : '';
    lines.push(`  no worker polls '${r.noWorker.taskQueue}', so nothing advances this run${start}`);
  }
  for (const s of r.stages) {
    const step = s.step !== undefined ? ` step ${s.step}${s.totalSteps ? `/${s.totalSteps}` : ''}` : '';
    const loss = s.loss !== undefined ? ` loss ${s.loss.toPrecision(4)}` : '';
    const secs = s.seconds !== null ? ` ${s.seconds.toFixed(1)}s` : '';
    lines.push(`  ${s.name.padEnd(18)} ${s.status}${secs}${step}${loss}`);
    if (s.lastFailure) lines.push(`    attempt ${s.attempt} after: ${s.lastFailure}`);
    if (s.waitingFor) lines.push(`    waiting for ${waitingName(s.waitingFor)} (since ${s.waitingSince})`);
    if (s.startWorker)
      lines.push(`    no worker polls '${s.taskQueue}': start one with \`${s.startWorker}\``);
    else if (s.taskQueue) lines.push(`    waiting for a worker of '${s.taskQueue}'`);
    if (s.status === 'stale')
      lines.push(`    last heartbeat ${s.heartbeatAgeSeconds}s ago: its worker may be stopped or dead`);
    if (s.error) lines.push(`    ${s.error}`);
    // A stage computed in more than one attempt says so: each one's worker, span, steps and end.
    if ((s.attempts?.length ?? 0) > 1) for (const a of s.attempts!) lines.push(`    ${describeAttempt(a)}`);
  }
  if (r.error) lines.push(`  error: ${r.error}`);
  if (r.intervalMethod) lines.push(`  intervals: ${r.intervalMethod}`);
  for (const [k, v] of Object.entries(r.metrics)) {
    const d = r.metricDefinitions?.[k];
    const ci = r.metricIntervals?.[k];
    const interval = ci ? ` [${ci[0].toPrecision(4)}, ${ci[1].toPrecision(4)}]` : '';
    lines.push(
      `  ${k} = ${v}${interval}${d ? `  ${d.paper ? '[paper]' : "[not the paper's]"} ${d.definition}` : ''}`,
    );
  }
  if (r.verdict) lines.push(`  verdict: ${r.verdict}`);
  lines.push(...verdictText(r));
  return lines.join('\n');
}

/** Each comparison with its test (what regressed alone, for verdicts from before the tests), and the method. */
function verdictText(r: RunRecord): string[] {
  const lines = (r.comparisons ?? r.regressions ?? []).map((line) => `    ${line}`);
  if (r.verdictMethod) lines.push(`    tests: ${r.verdictMethod}`);
  return lines;
}
