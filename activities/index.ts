/** Every activity the workers register, built over one artifact store. */
import type { Client } from '@temporalio/client';
import type { InfraSettings } from '../lib/config/infra.js';
import type { ArtifactStore } from '../lib/storage/artifact-store.js';
import { createHelloActivities } from './hello.js';
import { createJudgeActivities } from './judge.js';
import { createReportActivities } from './report.js';
import { createScoresActivities } from './scores.js';
import { createStageActivities } from './stage-runner.js';

export function createActivities(
  store: ArtifactStore,
  settings: InfraSettings,
  client: () => Promise<Client>,
) {
  return {
    ...createHelloActivities(store),
    ...createStageActivities(store, settings),
    ...createJudgeActivities(store, client),
    ...createReportActivities(store),
    ...createScoresActivities(store),
  };
}
