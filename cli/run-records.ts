/**
 * Run records for `lea status`, `lea runs` and `--json`: built from Temporal alone (describe, memo, the
 * progress query of a running run, the result of a finished one), so any machine with access sees the same.
 */
import { defaultPayloadConverter, type Client, type WorkflowHandle } from '@temporalio/client';
import { causeChain } from '../lib/errors.js';
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
}

/** Heartbeat details of running stage activities, by stage name (step, loss, ...): they run inside the
 * run's stage child workflows. */
async function liveProgress(client: Client, handle: WorkflowHandle): Promise<Map<string, LiveProgress>> {
  const d = await handle.describe();
  const out = new Map<string, LiveProgress>();
  for (const child of d.raw.pendingChildren ?? []) {
    if (!child.workflowId) continue;
    const c = await client.workflow.getHandle(child.workflowId).describe();
    for (const a of c.raw.pendingActivities ?? []) {
      const payload = a.heartbeatDetails?.payloads?.[0];
      if (!payload) continue;
      const details = defaultPayloadConverter.fromPayload<Record<string, unknown>>(payload);
      if (typeof details?.stage === 'string') out.set(details.stage, details as LiveProgress);
    }
  }
  return out;
}

function stageRows(stages: StageRecord[], live: Map<string, LiveProgress>): RunRecord['stages'] {
  return stages.map((s) => {
    const p = live.get(s.name);
    return {
      name: s.name,
      status: s.status,
      cached: s.cached,
      seconds: s.seconds,
      ...(p?.step !== undefined ? { step: p.step } : {}),
      ...(p?.totalSteps !== undefined ? { totalSteps: p.totalSteps } : {}),
      ...(p?.loss !== undefined ? { loss: p.loss } : {}),
      ...(s.error ? { error: s.error } : {}),
    };
  });
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
      record.stages = stageRows(progress.stages, await liveProgress(client, handle));
    } catch {
      // No worker to answer the query right now: the memo holds the last published stage states.
      record.stages = stageRows(memo.stages ?? [], await liveProgress(client, handle));
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

export function formatRecord(r: RunRecord): string {
  const lines = [
    `${r.runId}  ${r.status}  config ${r.config}  started ${r.startedAt}${r.finishedAt ? `  finished ${r.finishedAt}` : ''}`,
  ];
  for (const s of r.stages) {
    const step = s.step !== undefined ? ` step ${s.step}${s.totalSteps ? `/${s.totalSteps}` : ''}` : '';
    const loss = s.loss !== undefined ? ` loss ${s.loss.toPrecision(4)}` : '';
    const secs = s.seconds !== null ? ` ${s.seconds.toFixed(1)}s` : '';
    lines.push(`  ${s.name.padEnd(18)} ${s.status}${s.cached ? ' (cached)' : ''}${secs}${step}${loss}`);
    if (s.error) lines.push(`    ${s.error}`);
  }
  if (r.error) lines.push(`  error: ${r.error}`);
  for (const [k, v] of Object.entries(r.metrics)) lines.push(`  ${k} = ${v}`);
  if (r.verdict) lines.push(`  verdict: ${r.verdict}`);
  for (const line of r.regressions ?? []) lines.push(`    ${line}`);
  return lines.join('\n');
}
