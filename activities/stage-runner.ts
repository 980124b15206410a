/**
 * The one activity every pipeline stage runs through. It resolves the stage's inputs (artifact references),
 * computes its cache key, returns the cached output when one exists, and otherwise runs the stage's
 * implementation in a scratch folder, stores its files as an artifact (manifest with lineage) and reports.
 * Implementations (activities/stages/) see a StageContext: no Temporal, no S3 details.
 */
import { Context } from '@temporalio/activity';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import type { InfraSettings } from '../lib/config/infra.js';
import { initCompute } from '../lib/compute/backend.js';
import { BadInputError } from '../lib/errors.js';
import { stageCacheKey } from '../lib/pipeline/cache.js';
import type { StageOutcome } from '../lib/pipeline/run-record.js';
import type {
  ArtifactManifest,
  ArtifactRef,
  ArtifactStore,
  FileSource,
} from '../lib/storage/artifact-store.js';
import { STAGES } from './stages/index.js';

export interface StageRequest {
  runId: string;
  /** Name of the stage in the run (for lineage and scratch folders). */
  stage: string;
  /** Implementation, a key of STAGES. */
  impl: string;
  config: unknown;
  inputs: Record<string, ArtifactRef>;
  force: boolean;
}

export interface StageContext {
  runId: string;
  stage: string;
  cacheKey: string;
  /** An empty folder of this attempt's own; removed once the output is stored. */
  workdir: string;
  store: ArtifactStore;
  inputs: Record<string, ArtifactManifest>;
  /** Downloads input `name` (all its files, verified) into `dest` (default workdir/inputs/name); returns it. */
  inputDir(name: string, dest?: string): Promise<string>;
  /** Reports progress; it travels as heartbeat details (visible in `lea status`). */
  heartbeat(details: Record<string, unknown>): void;
  /** Prefix under which this stage's checkpoints live: the same for every run with the same cache key
   * (so a retry or `lea resume` continues them), except for a forced recomputation. */
  checkpointPrefix: string;
  signal: AbortSignal;
}

export interface StageResult {
  files: FileSource[];
  summary?: Record<string, number | string>;
  meta?: Record<string, unknown>;
}

/** Parses a stage's config section; a mismatch is bad input (never retried), naming the stage and field. */
export function stageConfig<T>(schema: z.ZodType<T>, raw: unknown, stage: string): T {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
  throw new BadInputError(`stage '${stage}' config: ${issues}`);
}

export interface StageImpl {
  /** Bump when the stage's output for the same inputs and config changes: it invalidates the cache. */
  codeVersion: string;
  run(ctx: StageContext, config: unknown): Promise<StageResult>;
}

export interface StageProbe {
  cacheKey: string;
  cached?: StageOutcome;
}

export function createStageActivities(store: ArtifactStore, settings: InfraSettings) {
  const resolve = async (req: StageRequest) => {
    const impl = STAGES[req.impl];
    if (!impl) throw new BadInputError(`stage '${req.stage}': unknown implementation '${req.impl}'`);
    const inputs: Record<string, ArtifactManifest> = {};
    for (const [name, ref] of Object.entries(req.inputs)) inputs[name] = await store.require(ref);
    const cacheKey = stageCacheKey({
      stage: req.impl,
      codeVersion: impl.codeVersion,
      config: req.config,
      inputs,
    });
    return { impl, inputs, cacheKey, outKey: `cache/${req.impl}/${cacheKey}` };
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
      const { impl, inputs, cacheKey, outKey } = await resolve(req);
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
          const ref = req.inputs[name];
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
        const summary = result.summary ?? {};
        const ref = await store.put(
          outKey,
          result.files,
          {
            run: req.runId,
            stage: req.stage,
            impl: req.impl,
            cacheKey,
            codeVersion: impl.codeVersion,
            inputs: req.inputs,
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
