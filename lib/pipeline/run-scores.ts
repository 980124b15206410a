/**
 * Where a finished run's per-item scores are: a reproduction run's metrics stage output (scores.json), a
 * suite's pooled scores (runs/<suite>/scores). What the verdict, `lea compare` and a suite's intervals read.
 */
import { parseScores, SCORES_FILE, type ItemScores } from '../metrics/scores.js';
import type { ArtifactRef, ArtifactStore } from '../storage/artifact-store.js';
import type { StageRecord } from './run-record.js';

/** A workflow result as far as scores go: a run's stages, or a suite's pooled scores. */
export interface ScoredResult {
  stages?: Pick<StageRecord, 'name' | 'output'>[];
  scores?: ArtifactRef | null;
  metrics: Record<string, number>;
}

export const suiteScoresKey = (suiteId: string): string => `runs/${suiteId}/scores`;

export function scoresRefOf(result: ScoredResult): ArtifactRef | undefined {
  if (result.stages) return result.stages.find((s) => s.name === 'metrics')?.output ?? undefined;
  return result.scores ?? undefined;
}

/** The item scores an artifact holds; undefined for one without (a metrics stage from before version 3). */
export async function readItemScores(
  store: ArtifactStore,
  ref: ArtifactRef | undefined,
): Promise<ItemScores | undefined> {
  if (!ref) return undefined;
  const manifest = await store.require(ref);
  if (!manifest.files.some((f) => f.path === SCORES_FILE)) return undefined;
  return parseScores((await store.readBytes(ref, SCORES_FILE)).toString(), `artifact '${ref.key}'`);
}
