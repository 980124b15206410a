/**
 * Run records for `lea status`, `lea runs` and `--json`: built from Temporal alone (describe, memo, the
 * progress query of a running run, the result of a finished one), so any machine with access sees the same.
 */
import { defaultPayloadConverter, type Client, type WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { causeChain } from '../lib/errors.js';
import { metricDefinitions } from '../lib/metrics/definitions.js';
import { describeFailure } from '../lib/pipeline/regression.js';
import type { RunRecord, RunStatus, StageRecord } from '../lib/pipeline/run-record.js';
import type { ReproductionResult, RunProgress } from '../workflows/reproduction.js';

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
}

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
): Promise<Map<string, LiveProgress>> {
  const byChild = new Map<string, string>();
  for (const s of stages)
    if (s.status === 'running' && s.childWorkflowId) byChild.set(s.childWorkflowId, s.name);
  if (byChild.size === 0) {
    for (const child of (await handle.describe()).raw.pendingChildren ?? [])
      if (child.workflowId) byChild.set(child.workflowId, '');
  }
  const out = new Map<string, LiveProgress>();
  for (const [childId, stageName] of byChild) {
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
      out.set(stage, {
        ...(details as LiveProgress),
        waiting: a.state === SCHEDULED,
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
    const status = s.status === 'running' && p?.waiting ? (p.attempt ? 'retrying' : 'queued') : s.status;
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
      ...(s.error ? { error: s.error } : {}),
      ...weightsOf(s),
    };
  });
}

/** The `weights.<input>` entries the stage runner adds to a stage's summary. */
function weightsOf(s: StageRecord): { weights?: Record<string, string> } {
  const used = Object.entries(s.summary ?? {}).filter(([k]) => k.startsWith('weights.'));
  return used.length ? { weights: Object.fromEntries(used.map(([k, v]) => [k.slice(8), String(v)])) } : {};
}

export async function runRecord(client: Client, runId: string): Promise<RunRecord> {
  const handle = client.workflow.getHandle(runId);
  const d = await handle.describe();
  const status = STATUS[d.status.name] ?? 'unknown';
  const memo = (d.memo ?? {}) as {
    config?: string;
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
  };
  if (d.type !== 'reproductionWorkflow') return record;
  if (status === 'completed') {
    const result = (await handle.result()) as ReproductionResult;
    record.stages = stageRows(result.stages, new Map());
    record.metrics = result.metrics;
    record.verdict = result.verdict?.verdict ?? null;
    record.regressions = (result.verdict?.failures ?? []).map(describeFailure);
  } else if (status === 'running') {
    try {
      const progress = await handle.query<RunProgress>('progress');
      record.stages = stageRows(progress.stages, await liveProgress(client, handle, progress.stages));
    } catch {
      // No worker to answer the query right now: the memo holds the last published stage states.
      record.stages = stageRows(memo.stages ?? [], await liveProgress(client, handle, memo.stages ?? []));
    }
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

export async function listRuns(client: Client, query?: string): Promise<RunRecord[]> {
  const ids: string[] = [];
  for await (const wf of client.workflow.list(query ? { query } : {})) {
    if (wf.type === 'reproductionWorkflow' || wf.type === 'helloWorkflow') ids.push(wf.workflowId);
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

export function formatRecord(r: RunRecord): string {
  const lines = [
    `${r.runId}  ${r.status}  config ${r.config}  started ${r.startedAt}${r.finishedAt ? `  finished ${r.finishedAt}` : ''}`,
  ];
  for (const s of r.stages) {
    const step = s.step !== undefined ? ` step ${s.step}${s.totalSteps ? `/${s.totalSteps}` : ''}` : '';
    const loss = s.loss !== undefined ? ` loss ${s.loss.toPrecision(4)}` : '';
    const secs = s.seconds !== null ? ` ${s.seconds.toFixed(1)}s` : '';
    lines.push(`  ${s.name.padEnd(18)} ${s.status}${s.cached ? ' (cached)' : ''}${secs}${step}${loss}`);
    if (s.lastFailure) lines.push(`    attempt ${s.attempt} after: ${s.lastFailure}`);
    if (s.error) lines.push(`    ${s.error}`);
  }
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const [k, v] of Object.entries(r.metrics)) {
    const d = r.metricDefinitions?.[k];
    lines.push(`  ${k} = ${v}${d ? `  ${d.paper ? '[paper]' : "[not the paper's]"} ${d.definition}` : ''}`);
  }
  if (r.verdict) lines.push(`  verdict: ${r.verdict}`);
  for (const line of r.regressions ?? []) lines.push(`    ${line}`);
  return lines.join('\n');
}
