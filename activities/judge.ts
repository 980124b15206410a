/** The regression verdict of a finished run: its metrics against a baseline and the last good run. */
import type { Client } from '@temporalio/client';
import { judge, parseBaseline, type Verdict } from '../lib/pipeline/regression.js';
import type { ArtifactStore } from '../lib/storage/artifact-store.js';

export interface JudgeInput {
  runId: string;
  configName: string;
  metrics: Record<string, number>;
  baseline: { source: string; text: string };
}

export function createJudgeActivities(store: ArtifactStore, client: () => Promise<Client>) {
  /** The newest completed run of the same config whose verdict was pass, with its metrics. */
  async function lastGood(configName: string, exclude: string) {
    const c = await client();
    const query = `LeaConfig = '${configName.replaceAll("'", '')}' AND LeaVerdict = 'pass' AND ExecutionStatus = 'Completed'`;
    let best: { runId: string; started: number } | undefined;
    for await (const wf of c.workflow.list({ query })) {
      if (wf.workflowId === exclude) continue;
      const started = wf.startTime.getTime();
      if (!best || started > best.started) best = { runId: wf.workflowId, started };
    }
    if (!best) return undefined;
    const result = (await c.workflow.getHandle(best.runId).result()) as { metrics: Record<string, number> };
    return { runId: best.runId, metrics: result.metrics };
  }

  return {
    async judgeRun(input: JudgeInput): Promise<Verdict> {
      const baseline = parseBaseline(input.baseline.text, input.baseline.source);
      const verdict = judge(input.metrics, baseline, await lastGood(input.configName, input.runId));
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
