/**
 * A suite's pooled scores: its runs' per-item scores pooled per stimulus (lib/metrics/scores.ts), stored as
 * runs/<suite>/scores (what a later verdict or `lea compare` pairs with), and the bootstrap interval of each
 * item-mean metric's mean over the runs.
 */
import { describeIntervals, itemIntervals } from '../lib/metrics/intervals.js';
import { poolScores, SCORES_FILE, toScoresFile, type ItemScores } from '../lib/metrics/scores.js';
import { readItemScores, suiteScoresKey } from '../lib/pipeline/run-scores.js';
import type { IntervalSettings } from '../lib/stats/bootstrap.js';
import type { ArtifactRef, ArtifactStore } from '../lib/storage/artifact-store.js';

export interface PoolRequest {
  suiteId: string;
  /** The completed runs' metrics stage outputs. */
  runs: ArtifactRef[];
  intervals: IntervalSettings;
}

export interface PooledScores {
  scores: ArtifactRef | null;
  metricIntervals: Record<string, [number, number]>;
  /** How the intervals were computed, or why there are none. */
  intervalMethod: string;
}

/** The bootstrap of a suite draws from a fixed stream: its runs' seeds differ, the pooled items do not. */
const SUITE_BOOTSTRAP_SEED = 0;

export function createScoresActivities(store: ArtifactStore) {
  return {
    async poolSuiteScores(req: PoolRequest): Promise<PooledScores> {
      const runs: ItemScores[] = [];
      for (const ref of req.runs) {
        const s = await readItemScores(store, ref);
        if (!s)
          return { scores: null, metricIntervals: {}, intervalMethod: `none: ${ref.key} has no scores.json` };
        runs.push(s);
      }
      const pooled = poolScores(runs);
      if (!pooled)
        return {
          scores: null,
          metricIntervals: {},
          intervalMethod: 'none: the runs share fewer than two test items',
        };
      const scores = await store.put(
        suiteScoresKey(req.suiteId),
        [{ path: SCORES_FILE, bytes: Buffer.from(JSON.stringify(toScoresFile(pooled))) }],
        { run: req.suiteId, stage: 'scores', pooledFrom: req.runs.map((r) => r.key) },
        { overwrite: true },
      );
      return {
        scores,
        metricIntervals: itemIntervals(pooled.scores, req.intervals, SUITE_BOOTSTRAP_SEED),
        intervalMethod: describeIntervals(
          req.intervals,
          SUITE_BOOTSTRAP_SEED,
          `the ${pooled.items.length} test items the ${runs.length} runs share, each item's score its mean over the runs`,
        ),
      };
    },
  };
}

export type ScoresActivities = ReturnType<typeof createScoresActivities>;
