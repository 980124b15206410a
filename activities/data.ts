/** Data activities: fetch + verify a dataset into the artifact store, heartbeating download progress. */
import { Context } from '@temporalio/activity';
import { join } from 'node:path';
import { fetchDataset, loadDatasetManifest, type FetchResult } from '../lib/data/download.js';
import type { InfraSettings } from '../lib/config/infra.js';
import type { ArtifactStore } from '../lib/storage/artifact-store.js';

export interface FetchDatasetInput {
  /** Where the manifest came from (named in errors). */
  manifestSource: string;
  /** The manifest's YAML text, carried in the workflow input so every worker sees the same one. */
  manifestText: string;
  baseUrl?: string;
}

export function createDataActivities(store: ArtifactStore, settings: InfraSettings) {
  return {
    async fetchDataset(input: FetchDatasetInput): Promise<FetchResult> {
      const ctx = Context.current();
      const manifest = loadDatasetManifest(input.manifestSource, input.manifestText);
      return fetchDataset(manifest, input.manifestSource, store, {
        // Partial downloads stay here between attempts, so a retried activity resumes them.
        cacheDir: join(settings.home, 'downloads'),
        baseUrl: input.baseUrl,
        sourceS3: store.s3,
        onProgress: (p) => ctx.heartbeat(p),
      });
    },
  };
}

export type DataActivities = ReturnType<typeof createDataActivities>;
