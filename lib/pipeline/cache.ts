/**
 * Stage cache keys: a stage's output is keyed by its name, its code version, its own config section and the
 * content of its inputs (file hashes, not manifest hashes, so an identical re-computation upstream still hits;
 * TensorBoard event files left out, since their wall times differ between identical computations).
 * A stage whose key has an artifact is skipped.
 */
import { createHash } from 'node:crypto';
import { TENSORBOARD_DIR } from '../report/tensorboard.js';
import type { ArtifactManifest } from '../storage/artifact-store.js';

/** Canonical JSON: object keys sorted, so the same config always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export interface CacheKeyParts {
  stage: string;
  codeVersion: string;
  config: unknown;
  /** Input name → the manifest of the artifact it refers to. */
  inputs: Record<string, Pick<ArtifactManifest, 'files'>>;
}

/** A stage's TensorBoard event files: logs stamped with wall times, not content a later stage reads. */
const isLog = (path: string) => path.startsWith(`${TENSORBOARD_DIR}/`);

export function stageCacheKey(parts: CacheKeyParts): string {
  const inputs = Object.fromEntries(
    Object.entries(parts.inputs).map(([name, m]) => [
      name,
      m.files.filter((f) => !isLog(f.path)).map((f) => [f.path, f.sha256]),
    ]),
  );
  return createHash('sha256')
    .update(canonicalJson({ stage: parts.stage, code: parts.codeVersion, config: parts.config, inputs }))
    .digest('hex');
}
