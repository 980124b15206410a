/**
 * A stage's cache key from its request: the one computation the stage runner (to skip or store a stage) and
 * `lea run --dry-run` (to say which stages are cached) share, so the two cannot disagree.
 */
import { BadInputError } from '../errors.js';
import type { ArtifactManifest, ArtifactRef, ArtifactStore } from '../storage/artifact-store.js';
import { missingWeights, weightsKey } from '../weights/import.js';
import { stageCacheKey } from './cache.js';
import { downstreamClosure, type StagePlan } from './run-record.js';

export interface StageKeyParts {
  /** The stage's name in the run (for messages). */
  stage: string;
  /** Its implementation, a key of the STAGES registry. */
  impl: string;
  /** That implementation's code version (the caller reads the registry: lib does not import activities). */
  codeVersion: string;
  config: unknown;
  /** Input name → the artifact of an upstream stage. */
  inputs: Record<string, ArtifactRef>;
  /** Input name → imported weights name. */
  weights?: Record<string, string>;
}

export interface StageKey {
  /** Every input, imported weights included, as an artifact reference. */
  refs: Record<string, ArtifactRef>;
  inputs: Record<string, ArtifactManifest>;
  cacheKey: string;
  /** Where the stage's output is stored; the stage is cached when it exists. */
  outKey: string;
}

export async function resolveStageKey(store: ArtifactStore, parts: StageKeyParts): Promise<StageKey> {
  // Weights are inputs like any other: their manifests (content hashes) enter the cache key.
  const refs: Record<string, ArtifactRef> = { ...parts.inputs };
  for (const [name, weights] of Object.entries(parts.weights ?? {})) {
    const ref = await store.ref(weightsKey(weights));
    if (!ref) throw new BadInputError(`stage '${parts.stage}': ${missingWeights(weights)}`);
    refs[name] = ref;
  }
  const inputs: Record<string, ArtifactManifest> = {};
  for (const [name, ref] of Object.entries(refs)) inputs[name] = await store.require(ref);
  const cacheKey = stageCacheKey({
    stage: parts.impl,
    codeVersion: parts.codeVersion,
    config: parts.config,
    inputs,
  });
  return { refs, inputs, cacheKey, outKey: `cache/${parts.impl}/${cacheKey}` };
}

/** What a run would do with a stage: take it from the cache, run it, or run it because of `--force`. */
export type CacheState = 'cached' | 'runs' | 'forced';

/**
 * Each stage's cache state, found as a run finds it: in plan order, a stage whose upstream stages are all
 * cached has its key computed from their stored outputs and looked up. A stage downstream of one that runs
 * has no key before that output exists, so it counts as running (a byte-identical recomputation upstream
 * could still make it a hit then). `--force` stages and everything downstream of them are `forced`.
 */
export async function planCacheStates(
  store: ArtifactStore,
  plan: StagePlan[],
  /** The STAGES registry (activities/stages), for each implementation's code version. */
  registry: Record<string, { codeVersion: string } | undefined>,
  force: string[],
): Promise<Record<string, CacheState>> {
  const forced = downstreamClosure(plan, force);
  const outputs = new Map<string, ArtifactRef>();
  const states: Record<string, CacheState> = {};
  for (const p of plan) {
    const inputs = Object.entries(p.needs).map(([input, from]) => [input, outputs.get(from)] as const);
    let state: CacheState = forced.has(p.name) ? 'forced' : 'runs';
    if (state === 'runs' && inputs.every(([, ref]) => ref)) {
      const impl = registry[p.impl];
      if (!impl) throw new Error(`internal: stage '${p.name}' has no implementation '${p.impl}'`);
      const { outKey } = await resolveStageKey(store, {
        ...p,
        stage: p.name,
        codeVersion: impl.codeVersion,
        inputs: Object.fromEntries(inputs) as Record<string, ArtifactRef>,
      });
      const out = await store.ref(outKey);
      if (out) {
        outputs.set(p.name, out);
        state = 'cached';
      }
    }
    states[p.name] = state;
  }
  return states;
}
