/**
 * The one activity every pipeline stage runs through. It resolves the stage's inputs (artifact references),
 * computes its cache key, returns the cached output when one exists, and otherwise runs the stage's
 * implementation in a scratch folder, stores its files as an artifact (manifest with lineage) and reports.
 * Implementations (activities/stages/) see a StageContext: no Temporal, no S3 details.
 */
import { Context } from '@temporalio/activity';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { InfraSettings } from '../lib/config/infra.js';
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
  /** Downloads input `name` (all its files, verified) and returns the local folder. */
  inputDir(name: string): Promise<string>;
  /** Reports progress; it travels as heartbeat details (visible in `lea status`). */
  heartbeat(details: Record<string, unknown>): void;
  /** Heartbeat details of the previous attempt of this activity, if it was retried. */
  previousAttempt: Record<string, unknown> | undefined;
  /** Prefix under which this stage's checkpoints live: the same for every run with the same cache key. */
  checkpointPrefix: string;
  signal: AbortSignal;
}

export interface StageResult {
  files: FileSource[];
  summary?: Record<string, number | string>;
  meta?: Record<string, unknown>;
}

export interface StageImpl {
  /** Bump when the stage's output for the same inputs and config changes: it invalidates the cache. */
  codeVersion: string;
  run(ctx: StageContext, config: unknown): Promise<StageResult>;
}

export function createStageActivities(store: ArtifactStore, settings: InfraSettings) {
  return {
    async runStage(req: StageRequest): Promise<StageOutcome> {
      const impl = STAGES[req.impl];
      if (!impl) throw new BadInputError(`stage '${req.stage}': unknown implementation '${req.impl}'`);
      const started = Date.now();
      const inputs: Record<string, ArtifactManifest> = {};
      for (const [name, ref] of Object.entries(req.inputs)) inputs[name] = await store.require(ref);
      const cacheKey = stageCacheKey({
        stage: req.impl,
        codeVersion: impl.codeVersion,
        config: req.config,
        inputs,
      });
      const outKey = `cache/${req.impl}/${cacheKey}`;
      if (!req.force) {
        const ref = await store.ref(outKey);
        if (ref) {
          const m = await store.require(ref);
          return {
            ref,
            cached: true,
            seconds: 0,
            summary: (m.meta.summary ?? {}) as StageOutcome['summary'],
          };
        }
      }
      const activity = Context.current();
      const workdir = join(settings.home, 'work', req.runId, `${req.stage}-attempt${activity.info.attempt}`);
      await rm(workdir, { recursive: true, force: true });
      await mkdir(workdir, { recursive: true });
      const ctx: StageContext = {
        runId: req.runId,
        stage: req.stage,
        cacheKey,
        workdir,
        store,
        inputs,
        inputDir: async (name) => {
          const ref = req.inputs[name];
          if (!ref) throw new BadInputError(`stage '${req.stage}' has no input '${name}'`);
          const dir = join(workdir, 'inputs', name);
          await store.download(ref, dir);
          return dir;
        },
        heartbeat: (details) => activity.heartbeat({ stage: req.stage, ...details }),
        previousAttempt: activity.info.heartbeatDetails as Record<string, unknown> | undefined,
        checkpointPrefix: `checkpoints/${req.impl}/${cacheKey}`,
        signal: activity.cancellationSignal,
      };
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
          ...result.meta,
        },
        { overwrite: req.force },
      );
      await rm(workdir, { recursive: true, force: true });
      return { ref, cached: false, seconds, summary };
    },
  };
}

export type StageActivities = ReturnType<typeof createStageActivities>;
