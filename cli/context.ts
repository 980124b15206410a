/**
 * What every command needs: the infrastructure settings, the health probes, the artifact store, and,
 * where the servers are the embedded ones, the guarantee that they are up.
 */
import { loadInfraSettings, type InfraSettings } from '../lib/config/infra.js';
import { up, type Probes } from '../lib/dev/servers.js';
import { ArtifactStore } from '../lib/storage/artifact-store.js';
import type { Client } from '@temporalio/client';
import { connectClient, probeTemporal } from '../workers/temporal-connection.js';

export function probesFor(settings: InfraSettings): Probes {
  return {
    temporal: () => probeTemporal(settings.temporal),
    s3: async () => {
      const store = ArtifactStore.fromSettings(settings.s3);
      try {
        await store.checkBucket();
      } finally {
        store.s3.destroy();
      }
    },
  };
}

/** Starts the embedded servers that are not answering (a no-op against external ones that answer). */
export async function ensureServers(settings: InfraSettings): Promise<void> {
  await up(settings, probesFor(settings), (line) => console.error(`lea: ${line}`));
}

export function settingsFromEnv(): InfraSettings {
  return loadInfraSettings(process.env);
}

/** Runs fn with a Temporal client for the configured server, closing its connection afterwards. */
export async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connectClient(settingsFromEnv().temporal);
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}
