/**
 * What a stage implementation (activities/stages/) sees and provides. Kept apart from the stage runner, which
 * imports the registry of implementations, so that a stage module can be imported on its own (no import circle).
 */
import type { z } from 'zod';
import { BadInputError } from '../lib/errors.js';
import type { ArtifactManifest, ArtifactStore, FileSource } from '../lib/storage/artifact-store.js';

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
