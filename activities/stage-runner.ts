/**
 * The one activity every pipeline stage runs through. It resolves the stage's inputs (artifact references),
 * computes its cache key, returns the cached output when one exists, and otherwise runs the stage's
 * implementation in a scratch folder, stores its files as an artifact (manifest with lineage) and reports.
 * Implementations (activities/stages/, registered in activities/stages/index.ts) see the StageContext of
 * activities/stage-contract.ts: no Temporal, no S3 details.
 */
import { Context } from '@temporalio/activity';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { InfraSettings } from '../lib/config/infra.js';
import { initCompute } from '../lib/compute/backend.js';
import { BadInputError } from '../lib/errors.js';
import { stageCacheKey } from '../lib/pipeline/cache.js';
import type { StageOutcome } from '../lib/pipeline/run-record.js';
import type { ArtifactManifest, ArtifactRef, ArtifactStore } from '../lib/storage/artifact-store.js';
import type { StageContext } from './stage-contract.js';
import { missingWeights, weightsKey, type WeightsRecord } from '../lib/weights/import.js';
import { STAGES } from './stages/index.js';

export interface StageRequest {
  runId: string;
  /** Name of the stage in the run (for lineage and scratch folders). */
  stage: string;
  /** Implementation, a key of STAGES. */
  impl: string;
  config: unknown;
  inputs: Record<string, ArtifactRef>;
  /** Input name → imported weights (`lea weights import --name`), resolved to their artifact here. */
  weights?: Record<string, string>;
  force: boolean;
}

export interface StageProbe {
  cacheKey: string;
  cached?: StageOutcome;
}

function weightsUsed(inputs: Record<string, ArtifactManifest>): Record<string, string> {
  const used: Record<string, string> = {};
  for (const [input, m] of Object.entries(inputs)) {
    const rec = m.meta.weights as WeightsRecord | undefined;
    if (rec) used[`weights.${input}`] = `${rec.name} (${rec.kind}, sha256 ${rec.source.sha256})`;
  }
  return used;
}

export function createStageActivities(store: ArtifactStore, settings: InfraSettings) {
  const resolve = async (req: StageRequest) => {
    const impl = STAGES[req.impl];
    if (!impl) throw new BadInputError(`stage '${req.stage}': unknown implementation '${req.impl}'`);
    // Weights are inputs like any other: their manifests (content hashes) enter the cache key.
    const refs: Record<string, ArtifactRef> = { ...req.inputs };
    for (const [name, weights] of Object.entries(req.weights ?? {})) {
      const ref = await store.ref(weightsKey(weights));
      if (!ref) throw new BadInputError(`stage '${req.stage}': ${missingWeights(weights)}`);
      refs[name] = ref;
    }
    const inputs: Record<string, ArtifactManifest> = {};
    for (const [name, ref] of Object.entries(refs)) inputs[name] = await store.require(ref);
    const cacheKey = stageCacheKey({
      stage: req.impl,
      codeVersion: impl.codeVersion,
      config: req.config,
      inputs,
    });
    return { impl, refs, inputs, cacheKey, outKey: `cache/${req.impl}/${cacheKey}` };
  };
  const cachedOutcome = async (outKey: string): Promise<StageOutcome | undefined> => {
    const ref = await store.ref(outKey);
    if (!ref) return undefined;
    const m = await store.require(ref);
    return { ref, cached: true, seconds: 0, summary: (m.meta.summary ?? {}) as StageOutcome['summary'] };
  };
  return {
    /** The stage's cache key, and its stored output when there is one (a cheap look, no computation). */
    async probeStage(req: StageRequest): Promise<StageProbe> {
      const { cacheKey, outKey } = await resolve(req);
      const cached = await cachedOutcome(outKey);
      return cached ? { cacheKey, cached } : { cacheKey };
    },

    async runStage(req: StageRequest): Promise<StageOutcome> {
      const started = Date.now();
      const { impl, refs, inputs, cacheKey, outKey } = await resolve(req);
      if (!req.force) {
        const cached = await cachedOutcome(outKey);
        if (cached) return cached;
      }
      const activity = Context.current();
      const workdir = join(settings.home, 'work', req.runId, `${req.stage}-attempt${activity.info.attempt}`);
      await rm(workdir, { recursive: true, force: true });
      await mkdir(workdir, { recursive: true });
      let lastDetails: Record<string, unknown> = { stage: req.stage };
      const ctx: StageContext = {
        runId: req.runId,
        stage: req.stage,
        cacheKey,
        workdir,
        store,
        inputs,
        inputDir: async (name, dest) => {
          const ref = refs[name];
          if (!ref) throw new BadInputError(`stage '${req.stage}' has no input '${name}'`);
          const dir = dest ?? join(workdir, 'inputs', name);
          await store.download(ref, dir);
          return dir;
        },
        heartbeat: (details) => activity.heartbeat((lastDetails = { stage: req.stage, ...details })),
        // A forced recomputation must not resume the checkpoints it is meant to redo: it gets its own.
        checkpointPrefix: `checkpoints/${req.impl}/${cacheKey}${req.force ? `/forced-${req.runId}` : ''}`,
        signal: activity.cancellationSignal,
      };
      const compute = await initCompute();
      // Heartbeats say the worker is alive, so they go on while a stage works without reporting (reading
      // inputs, a ridge solve, storing its output): the latest details again, a few times per heartbeat
      // timeout. A stage that blocks the event loop longer than the timeout still times out and is retried.
      const keepAlive = setInterval(
        () => activity.heartbeat(lastDetails),
        Math.max(1000, (activity.info.heartbeatTimeoutMs ?? 30_000) / 3),
      );
      try {
        const result = await impl.run(ctx, req.config);
        const seconds = (Date.now() - started) / 1000;
        // which imported networks the stage used, by name and source file hash, for the run record
        const summary = { ...result.summary, ...weightsUsed(inputs) };
        const ref = await store.put(
          outKey,
          result.files,
          {
            run: req.runId,
            stage: req.stage,
            impl: req.impl,
            cacheKey,
            codeVersion: impl.codeVersion,
            inputs: refs,
            config: req.config,
            seconds,
            summary,
            compute,
            ...result.meta,
          },
          { overwrite: req.force },
        );
        await rm(workdir, { recursive: true, force: true });
        return { ref, cached: false, seconds, summary };
      } finally {
        clearInterval(keepAlive);
      }
    },
  };
}

export type StageActivities = ReturnType<typeof createStageActivities>;
