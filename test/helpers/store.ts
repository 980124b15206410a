/** The artifact store of the test servers, and unique keys so tests never see each other's artifacts. */
import { randomBytes } from 'node:crypto';
import { loadInfraSettings } from '../../lib/config/infra.js';
import { ArtifactStore } from '../../lib/storage/artifact-store.js';

export function testStore(): ArtifactStore {
  return ArtifactStore.fromSettings(loadInfraSettings(process.env).s3);
}

export function uniqueKey(prefix: string): string {
  return `test/${prefix}-${randomBytes(6).toString('hex')}`;
}
