/**
 * The one activity every pipeline stage runs through. It resolves the stage's inputs (artifact references),
 * computes its cache key, returns the cached output when one exists, and otherwise runs the stage's
 * implementation in a scratch folder, stores its files as an artifact (manifest with lineage) and reports.
 * Implementations (activities/stages/, registered in activities/stages/index.ts) see the StageContext of
 * activities/stage-contract.ts: no Temporal, no S3 details.
 */
import { Context, type Info as ActivityInfo } from '@temporalio/activity';
import { hostname } from 'node:os';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InfraSettings } from '../lib/config/infra.js';
import { initCompute } from '../lib/compute/backend.js';
import { BadInputError, errorMessage } from '../lib/errors.js';
import { OWNER_FILE, trimScratch } from '../lib/pipeline/gc.js';
import { resolveStageKey } from '../lib/pipeline/stage-key.js';
import { DEFAULT_RUNTIME } from '../lib/pipeline/plan.js';
import type { StageAttempt, StageOutcome } from '../lib/pipeline/run-record.js';
import type { ArtifactManifest, ArtifactRef, ArtifactStore } from '../lib/storage/artifact-store.js';
import { outlastOutages } from '../lib/storage/s3.js';
import type { StageContext } from './stage-contract.js';
import type { WeightsRecord } from '../lib/weights/import.js';
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
  /** How long the stage waits out an S3 outage (runtime.dependencyWaitMinutes; absent in older runs). */
  dependencyWaitMinutes?: number;
}

/** The heartbeat details a stage last reported, and how it reports new ones. */
interface Beat {
  details: Record<string, unknown>;
  send: (details: Record<string, unknown>) => void;
  log: AttemptLog;
}

/**
 * The attempts of a stage so far: the earlier ones from the previous attempt's last heartbeat details (one
 * still `running` there was lost), and this one, updated from each heartbeat (its step, where it resumed).
 */
class AttemptLog {
  private readonly earlier: StageAttempt[];
  private readonly current: StageAttempt;

  constructor(info: ActivityInfo) {
    const previous = (info.heartbeatDetails as { attempts?: StageAttempt[] } | undefined)?.attempts ?? [];
    this.earlier = previous.map((a) =>
      a.ended === 'running' ? { ...a, ended: `lost: no heartbeat after ${a.endedAt}` } : a,
    );
    const now = new Date().toISOString();
    const worker = `${process.pid}@${hostname()}`;
    this.current = { attempt: info.attempt, worker, startedAt: now, endedAt: now, ended: 'running' };
  }

  /** Notes what a heartbeat says; returns every attempt so far. */
  seen(details: Record<string, unknown>): StageAttempt[] {
    if (this.current.ended === 'running') this.current.endedAt = new Date().toISOString();
    if (typeof details.step === 'number') this.current.step = details.step;
    if (typeof details.resumedFromStep === 'number') this.current.resumedFromStep = details.resumedFromStep;
    return [...this.earlier, { ...this.current }];
  }

  /** Every attempt, this one ended now (`how`); with `final`, this one stays ended. */
  end(how: string, final = true): StageAttempt[] {
    const ended = { ...this.current, endedAt: new Date().toISOString(), ended: how };
    if (final && this.current.ended === 'running') Object.assign(this.current, ended);
    return [...this.earlier, ended];
  }
}

/** Seconds summed over attempts (a lost one counts up to its last heartbeat). */
function attemptSeconds(attempts: StageAttempt[]): number {
  return attempts.reduce((t, a) => t + (Date.parse(a.endedAt) - Date.parse(a.startedAt)) / 1000, 0);
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

/** Scratch folders of the attempts this worker process runs now (the scratch limit never removes them). */
const activeWorkdirs = new Set<string>();

export function createStageActivities(store: ArtifactStore, settings: InfraSettings) {
  const resolve = async (req: StageRequest) => {
    const impl = STAGES[req.impl];
    if (!impl) throw new BadInputError(`stage '${req.stage}': unknown implementation '${req.impl}'`);
    // StageRequest carries the key's parts under the same names
    const key = await resolveStageKey(store, { ...req, codeVersion: impl.codeVersion });
    return { impl, ...key };
  };
  const cachedOutcome = async (outKey: string): Promise<StageOutcome | undefined> => {
    const ref = await store.ref(outKey);
    if (!ref) return undefined;
    const m = await store.require(ref);
    return { ref, cached: true, seconds: 0, summary: (m.meta.summary ?? {}) as StageOutcome['summary'] };
  };
  /** One try at a stage: cached output, or compute it in a fresh scratch folder and store it. */
  const runOnce = async (req: StageRequest, beat: Beat): Promise<StageOutcome> => {
    const resolved = await resolve(req);
    if (!req.force) {
      const cached = await cachedOutcome(resolved.outKey);
      if (cached) return cached;
    }
    const activity = Context.current();
    const workdir = join(settings.home, 'work', req.runId, `${req.stage}-attempt${activity.info.attempt}`);
    await rm(workdir, { recursive: true, force: true });
    await mkdir(workdir, { recursive: true });
    // lea gc and the scratch limit tell a finished attempt's folder by its owner process being gone
    await writeFile(join(workdir, OWNER_FILE), `${process.pid}\n`);
    activeWorkdirs.add(workdir);
    try {
      if (settings.scratchMaxBytes !== undefined)
        await trimScratch(settings.home, settings.scratchMaxBytes, activeWorkdirs);
      return await computeIn(workdir, req, beat, resolved);
    } finally {
      activeWorkdirs.delete(workdir);
    }
  };
  const computeIn = async (
    workdir: string,
    req: StageRequest,
    beat: Beat,
    { impl, refs, inputs, cacheKey, outKey }: Awaited<ReturnType<typeof resolve>>,
  ): Promise<StageOutcome> => {
    const activity = Context.current();
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
      heartbeat: beat.send,
      // A forced recomputation must not resume the checkpoints it is meant to redo: it gets its own.
      checkpointPrefix: `checkpoints/${req.impl}/${cacheKey}${req.force ? `/forced-${req.runId}` : ''}`,
      signal: activity.cancellationSignal,
    };
    const compute = await initCompute();
    const result = await impl.run(ctx, req.config);
    // not final: storing the output may still fail (or wait for S3)
    const attempts = beat.log.end('completed', false);
    const seconds = attemptSeconds(attempts);
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
        attempts,
        summary,
        compute,
        ...result.meta,
      },
      { overwrite: req.force },
    );
    await rm(workdir, { recursive: true, force: true });
    return { ref, cached: false, seconds, summary, attempts };
  };
  /**
   * Runs fn with the activity heartbeating: the latest details again, a few times per heartbeat timeout, so
   * the worker counts as alive while a stage works without reporting (reading inputs, a ridge solve, storing
   * its output) or waits for S3. A stage that blocks the event loop longer than the timeout still times out
   * and is retried. An S3 outage does not fail the attempt: fn is run again once S3 answers (stages are
   * idempotent and training resumes from its newest checkpoint), for up to the run's dependency budget, and
   * the details say `waitingFor: 's3'` meanwhile.
   */
  const heartbeating = async <T>(req: StageRequest, fn: (ctx: Beat) => Promise<T>): Promise<T> => {
    const activity = Context.current();
    const log = new AttemptLog(activity.info);
    let waiting = {};
    const pulse = () => activity.heartbeat({ ...beat.details, ...waiting, attempts: log.seen(beat.details) });
    const beat: Beat = {
      details: { stage: req.stage },
      send: (details) => {
        beat.details = { stage: req.stage, ...details };
        pulse();
      },
      log,
    };
    const keepAlive = setInterval(pulse, Math.max(1000, (activity.info.heartbeatTimeoutMs ?? 30_000) / 3));
    try {
      return await outlastOutages(() => fn(beat), {
        budgetMs: (req.dependencyWaitMinutes ?? DEFAULT_RUNTIME.dependencyWaitMinutes) * 60_000,
        probe: () => store.checkBucket(),
        signal: activity.cancellationSignal,
        onWait: (since) => {
          waiting = since ? { waitingFor: 's3', waitingSince: since.toISOString() } : {};
          pulse();
        },
      });
    } catch (err) {
      // Best effort: the next attempt learns why this one ended (or, if this is lost, when it was last seen).
      log.end(`failed: ${errorMessage(err)}`);
      pulse();
      throw err;
    } finally {
      clearInterval(keepAlive);
    }
  };
  return {
    /** The stage's cache key, and its stored output when there is one (a cheap look, no computation). */
    async probeStage(req: StageRequest): Promise<StageProbe> {
      return heartbeating(req, async () => {
        const { cacheKey, outKey } = await resolve(req);
        const cached = await cachedOutcome(outKey);
        return cached ? { cacheKey, cached } : { cacheKey };
      });
    },

    async runStage(req: StageRequest): Promise<StageOutcome> {
      return heartbeating(req, (beat) => runOnce(req, beat));
    },
  };
}

export type StageActivities = ReturnType<typeof createStageActivities>;
