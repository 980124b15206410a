/**
 * The regression verdict of a finished run or suite: its metrics and per-item scores against a baseline, and
 * against an earlier run (the baseline's pinned `run`, or the last good run of the same config), paired on items.
 */
import type { Client } from '@temporalio/client';
import { BadInputError } from '../lib/errors.js';
import { judge, parseBaseline, type ReferenceRun, type Verdict } from '../lib/pipeline/regression.js';
import { readItemScores, scoresRefOf, type ScoredResult } from '../lib/pipeline/run-scores.js';
import type { ArtifactRef, ArtifactStore } from '../lib/storage/artifact-store.js';

export interface JudgeInput {
  runId: string;
  configName: string;
  metrics: Record<string, number>;
  /** The artifact with the run's scores.json (its metrics stage output, or a suite's pooled scores). */
  scores?: ArtifactRef;
  baseline: { source: string; text: string };
}

/**
 * The result of a run or suite that has completed; anything else (unknown, running, failed) is bad input named by
 * `label`. What a verdict's pinned or last good run, `lea compare` and the submit-time check of a pinned run read.
 */
export async function completedResult<T>(client: Client, runId: string, label: string): Promise<T> {
  const handle = client.workflow.getHandle(runId);
  const status = await handle.describe().then(
    (d) => d.status.name.toLowerCase(),
    () => 'not found',
  );
  if (status !== 'completed') throw new BadInputError(`${label}: ${status}, not a completed run or suite`);
  return (await handle.result()) as T;
}

export function createJudgeActivities(store: ArtifactStore, client: () => Promise<Client>) {
  /** The newest completed run of the same config whose verdict was pass. */
  async function lastGood(configName: string, exclude: string): Promise<string | undefined> {
    const c = await client();
    const query = `LeaConfig = '${configName.replaceAll("'", '')}' AND LeaVerdict = 'pass' AND ExecutionStatus = 'Completed'`;
    let best: { runId: string; started: number } | undefined;
    for await (const wf of c.workflow.list({ query })) {
      if (wf.workflowId === exclude) continue;
      const started = wf.startTime.getTime();
      if (!best || started > best.started) best = { runId: wf.workflowId, started };
    }
    return best?.runId;
  }

  async function reference(runId: string, pinned: boolean, source: string): Promise<ReferenceRun> {
    const result = await completedResult<ScoredResult>(await client(), runId, `${source}: run ${runId}`);
    const items = await readItemScores(store, scoresRefOf(result));
    return { runId, pinned, metrics: result.metrics, ...(items ? { items } : {}) };
  }

  return {
    async judgeRun(input: JudgeInput): Promise<Verdict> {
      const baseline = parseBaseline(input.baseline.text, input.baseline.source);
      const items = await readItemScores(store, input.scores);
      const refId = baseline.run ?? (await lastGood(input.configName, input.runId));
      const ref = refId ? await reference(refId, !!baseline.run, input.baseline.source) : undefined;
      const verdict = judge({ metrics: input.metrics, ...(items ? { items } : {}) }, baseline, ref);
      await store.put(
        `runs/${input.runId}/verdict`,
        [
          {
            path: 'verdict.json',
            bytes: Buffer.from(JSON.stringify({ ...verdict, metrics: input.metrics }, null, 2)),
          },
        ],
        { run: input.runId, stage: 'verdict', baseline: input.baseline.source },
        { overwrite: true },
      );
      return verdict;
    },
  };
}

export type JudgeActivities = ReturnType<typeof createJudgeActivities>;
