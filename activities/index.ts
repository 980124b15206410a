/** Every activity the workers register, built over one artifact store. */
import type { InfraSettings } from '../lib/config/infra.js';
import type { ArtifactStore } from '../lib/storage/artifact-store.js';
import { createDataActivities } from './data.js';
import { createHelloActivities } from './hello.js';

export function createActivities(store: ArtifactStore, settings: InfraSettings) {
  return { ...createHelloActivities(store), ...createDataActivities(store, settings) };
}
