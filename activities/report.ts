/**
 * The pipeline's last stage: gathers what the report shows from the run's stage artifacts (stimuli, decoded
 * samples, measured and predicted fMRI, loss curves, metrics), stores that bundle as runs/<run>/report-input
 * and the rendered page as runs/<run>/report. Not cached: it describes this run (its times, its verdict).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { intervalsOfSummary } from '../lib/metrics/intervals.js';
import type { StageRecord } from '../lib/pipeline/run-record.js';
import { parseBaseline, type Verdict } from '../lib/pipeline/regression.js';
import { renderAndStoreReport, reportInputFiles, reportInputKey, reportKey } from '../lib/report/load.js';
import { writeSuiteReport, type SuiteReportInput } from '../lib/report/suite.js';
import { writeSweepReport } from '../lib/report/sweep.js';
import { COMPARE_DEFAULTS } from '../lib/pipeline/compare.js';
import { loadSweepComparison, type SweepOutcome } from '../lib/pipeline/sweep.js';
import type { MetricValue, ReportInput } from '../lib/report/report.js';
import type { ArtifactRef, ArtifactStore } from '../lib/storage/artifact-store.js';
import { parseNpy } from '../lib/tensors/npy.js';

/** The suite's table as the workflow knows it: the baseline as its file's text, parsed here. */
export type SuiteReportRequest = Omit<SuiteReportInput, 'finishedAt' | 'baseline'> & {
  baseline?: { source: string; text: string };
};

export interface SweepReportRequest {
  suiteId: string;
  name: string;
  codeVersion: string;
  startedAt: string;
  sweep: SweepOutcome;
}

export interface ReportRequest {
  runId: string;
  configName: string;
  configFile: string;
  dataset: string;
  subject: string;
  codeVersion: string;
  startedAt: string;
  stages: StageRecord[];
  metrics: Record<string, number>;
  verdict: Verdict | null;
  baseline?: { source: string; text: string };
}

const TRAINING_STAGES = ['mae', 'fmri-ae', 'tokenizer', 'maskgit'];

function intervalMethodOf(stages: StageRecord[]): { intervalMethod?: string } {
  const intervals = intervalsOfSummary(stages.find((s) => s.name === 'metrics')?.summary ?? {});
  return intervals ? { intervalMethod: intervals.intervalMethod } : {};
}

export function createReportActivities(store: ArtifactStore) {
  const output = (req: ReportRequest, name: string): ArtifactRef => {
    const ref = req.stages.find((s) => s.name === name)?.output;
    if (!ref) throw new Error(`run ${req.runId}: stage '${name}' has no output to report`);
    return ref;
  };
  const npy = async (ref: ArtifactRef, path: string) =>
    parseNpy(await store.readBytes(ref, path), `artifact '${ref.key}' file '${path}'`);
  const json = async <T>(ref: ArtifactRef, path: string) =>
    JSON.parse((await store.readBytes(ref, path)).toString()) as T;

  /** A suite's page, written by `write` into a scratch folder, stored whole as runs/<suite>/report. */
  const storeSuitePage = async (suiteId: string, write: (dir: string) => Promise<string[]>) => {
    const dir = await mkdtemp(join(tmpdir(), 'lea-suite-report-'));
    try {
      const files = await write(dir);
      return await store.put(
        reportKey(suiteId),
        files.map((path) => ({ path, fromFile: join(dir, path) })),
        { run: suiteId, stage: 'report', suite: true },
        { overwrite: true },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };

  return {
    /** A sweep's comparison page (lib/report/sweep.ts) at the compare defaults, over its declared family. */
    async reportSweep(req: SweepReportRequest): Promise<ArtifactRef> {
      const { sweep, ...rest } = req;
      const comparison = await loadSweepComparison(store, sweep, {
        ...COMPARE_DEFAULTS,
        ...(sweep.metrics ? { family: sweep.metrics } : {}),
      });
      const input = { ...rest, finishedAt: new Date().toISOString(), comparison };
      return storeSuitePage(req.suiteId, (dir) => writeSweepReport(input, dir));
    },

    /** A suite's table (lib/report/suite.ts), stored as runs/<suite>/report. */
    async reportSuite(req: SuiteReportRequest): Promise<ArtifactRef> {
      const { baseline, ...rest } = req;
      const parsed = baseline ? parseBaseline(baseline.text, baseline.source) : null;
      const input: SuiteReportInput = {
        ...rest,
        finishedAt: new Date().toISOString(),
        baseline: parsed && {
          name: parsed.name,
          source: parsed.source,
          values: Object.fromEntries(Object.entries(parsed.metrics).map(([k, e]) => [k, e.value])),
        },
      };
      return storeSuitePage(req.suiteId, (dir) => writeSuiteReport(input, dir));
    },

    async reportRun(req: ReportRequest): Promise<ArtifactRef> {
      const prepared = output(req, 'prepare');
      const meta = await json<{ roiNames: string[]; roiSizes: number[] }>(prepared, 'meta.json');
      const metricsManifest = await store.require(output(req, 'metrics'));
      const compute = metricsManifest.meta.compute as {
        backend?: string;
        threads?: number;
        versions?: Record<string, string>;
      };
      const baseline = req.baseline ? parseBaseline(req.baseline.text, req.baseline.source) : null;
      const input: ReportInput = {
        run: {
          runId: req.runId,
          config: req.configFile,
          status: 'completed',
          startedAt: req.startedAt,
          finishedAt: new Date().toISOString(),
          stages: req.stages.map((s) => ({
            name: s.name,
            status: s.status,
            cached: s.cached,
            seconds: s.seconds,
            ...(s.attempts?.length ? { attempts: s.attempts } : {}),
          })),
          metrics: req.metrics,
          verdict: req.verdict?.verdict ?? null,
          configName: req.configName,
          dataset: req.dataset,
          subject: req.subject,
          codeVersion: req.codeVersion,
          backend: `${compute.backend ?? '?'} (libtensorflow ${compute.versions?.libtensorflow ?? '-'}, ${compute.threads ?? '?'} threads)`,
          machine: `${hostname()} (${cpus().length} CPU cores)`,
        },
        stimuli: await npy(prepared, 'test_images.npy'),
        samples: await npy(output(req, 'decode'), 'samples.npy'),
        encoding: {
          measured: await npy(prepared, 'test_fmri.npy'),
          predicted: await npy(output(req, 'encode'), 'predicted_fmri_test.npy'),
          roiNames: meta.roiNames,
          roiSizes: meta.roiSizes,
        },
        lossCurves: await Promise.all(
          req.stages
            .filter((s) => TRAINING_STAGES.includes(s.name) && s.output)
            .map(async (s) => ({
              stage: s.name,
              points: await json<{ step: number; loss: number }[]>(s.output!, 'losses.json'),
            })),
        ),
        metrics: (
          await json<(Omit<MetricValue, 'chance'> & { chance: number | null })[]>(
            output(req, 'metrics'),
            'metrics.json',
          )
        ).map(({ chance, ...m }) => (chance === null ? m : { ...m, chance })),
        baseline: baseline && {
          name: baseline.name,
          source: baseline.source,
          values: Object.fromEntries(Object.entries(baseline.metrics).map(([k, e]) => [k, e.value])),
        },
        verdict: req.verdict,
        ...intervalMethodOf(req.stages),
        artifacts: await Promise.all(
          req.stages
            .filter((s) => s.output)
            .map(async (s) => ({
              stage: s.name,
              key: s.output!.key,
              files: (await store.require(s.output!)).files.map((f) => f.path),
            })),
        ),
      };
      await store.put(
        reportInputKey(req.runId),
        reportInputFiles(input),
        { run: req.runId, stage: 'report-input' },
        { overwrite: true },
      );
      const dir = await mkdtemp(join(tmpdir(), 'lea-report-'));
      try {
        const { key } = await renderAndStoreReport(store, req.runId, input, dir);
        return (await store.ref(key))!;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export type ReportActivities = ReturnType<typeof createReportActivities>;
