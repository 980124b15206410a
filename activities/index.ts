/** Every activity the workers register, built over one artifact store. */
import type { ArtifactStore } from '../lib/storage/artifact-store.js';
import { createHelloActivities } from './hello.js';

export function createActivities(store: ArtifactStore) {
  return { ...createHelloActivities(store) };
}
