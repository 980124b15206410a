/**
 * The stored form of a ReportInput: one artifact (the report stage stores it at `runs/<runId>/report-input`)
 * holding report-input.json (everything but the arrays) and stimuli.npy, samples.npy, measured.npy,
 * predicted.npy. reportInputFiles writes that bundle, loadReportInput reads it back and checks it.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { writeReport } from './report.js';
import { IntegrityError } from '../errors.js';
import type { ArtifactStore, FileSource } from '../storage/artifact-store.js';
import { encodeNpy, parseNpy } from '../tensors/npy.js';
import type { ReportInput } from './report.js';

export const REPORT_INPUT_JSON = 'report-input.json';
const ARRAYS = ['stimuli', 'samples', 'measured', 'predicted'] as const;

/** The key of a run's stored report input. */
export function reportInputKey(runId: string): string {
  return `runs/${runId}/report-input`;
}

/**
 * A number that may be non-finite: JSON has no NaN or Infinity, so the writer stores them as the strings
 * 'NaN', 'Infinity', '-Infinity'; a plain JSON.stringify writes null, read as NaN.
 */
const jsonNumber = z.union([
  z.number(),
  z.enum(['NaN', 'Infinity', '-Infinity']).transform(Number),
  z.null().transform(() => Number.NaN),
]);

function nonFiniteAsString(_key: string, value: unknown): unknown {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value;
}

const stageSchema = z.object({
  name: z.string(),
  status: z.enum([
    'pending',
    'queued',
    'retrying',
    'stale',
    'running',
    'completed',
    'cached',
    'failed',
    'cancelled',
  ]),
  cached: z.boolean(),
  seconds: z.number().nullable(),
  step: z.number().optional(),
  totalSteps: z.number().optional(),
  loss: jsonNumber.optional(),
});

// the RunRecord part is not strict: the record may gain fields the report does not show
const runSchema = z.object({
  runId: z.string(),
  config: z.string(),
  status: z.enum(['running', 'completed', 'failed', 'cancelled', 'terminated', 'timed_out', 'unknown']),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  stages: z.array(stageSchema),
  metrics: z.record(z.string(), jsonNumber),
  verdict: z.enum(['pass', 'regressed']).nullable(),
  configName: z.string(),
  dataset: z.string(),
  subject: z.string(),
  codeVersion: z.string(),
  backend: z.string(),
  machine: z.string(),
});

const checkSchema = z.strictObject({
  metric: z.string(),
  against: z.enum(['baseline', 'last-good', 'pinned-run']),
  expected: z.number(),
  actual: z.number().nullable(),
  delta: z.number().nullable(),
  tolerance: z.number(),
  test: z.enum(['paired sign-flip', 'bootstrap', 'tolerance']).optional(),
  interval: z.tuple([jsonNumber, jsonNumber]).optional(),
  p: z.number().optional(),
  pAdjusted: z.number().optional(),
  items: z.number().int().optional(),
  regressed: z.boolean().optional(),
});

const verdictSchema = z.strictObject({
  verdict: z.enum(['pass', 'regressed']),
  failures: z.array(checkSchema),
  checks: z.array(checkSchema).optional(),
  checked: z.array(z.string()),
  unfilled: z.array(z.string()),
  baseline: z.string(),
  lastGoodRunId: z.string().optional(),
  pinnedRunId: z.string().optional(),
  method: z.string().optional(),
});

/** report-input.json */
export const reportInputFileSchema = z.strictObject({
  run: runSchema,
  encoding: z.strictObject({ roiNames: z.array(z.string()), roiSizes: z.array(z.number().int().positive()) }),
  lossCurves: z.array(
    z.strictObject({
      stage: z.string(),
      points: z.array(z.strictObject({ step: z.number(), loss: jsonNumber })),
    }),
  ),
  metrics: z.array(
    z.strictObject({
      name: z.string(),
      value: jsonNumber,
      min: jsonNumber.optional(),
      max: jsonNumber.optional(),
      chance: jsonNumber.optional(),
      low: jsonNumber.optional(),
      high: jsonNumber.optional(),
    }),
  ),
  intervalMethod: z.string().optional(),
  baseline: z
    .strictObject({
      name: z.string(),
      source: z.string(),
      values: z.record(z.string(), z.number().nullable()),
    })
    .nullable(),
  verdict: verdictSchema.nullable(),
  artifacts: z.array(z.strictObject({ stage: z.string(), key: z.string(), files: z.array(z.string()) })),
});

/** What report-input.json holds once parsed (non-finite numbers restored). */
export type ReportInputFile = z.output<typeof reportInputFileSchema>;

/** The files of the stored bundle (for ArtifactStore.put). */
export function reportInputFiles(input: ReportInput): FileSource[] {
  const json: ReportInputFile = {
    run: input.run,
    encoding: { roiNames: input.encoding.roiNames, roiSizes: input.encoding.roiSizes },
    lossCurves: input.lossCurves,
    metrics: input.metrics,
    baseline: input.baseline,
    verdict: input.verdict,
    ...(input.intervalMethod ? { intervalMethod: input.intervalMethod } : {}),
    artifacts: input.artifacts,
  };
  const arrays = {
    stimuli: input.stimuli,
    samples: input.samples,
    measured: input.encoding.measured,
    predicted: input.encoding.predicted,
  };
  return [
    { path: REPORT_INPUT_JSON, bytes: new TextEncoder().encode(JSON.stringify(json, nonFiniteAsString, 2)) },
    ...ARRAYS.map((name) => ({ path: `${name}.npy`, bytes: encodeNpy(arrays[name]) })),
  ];
}

/** Reads a stored report input (see the module comment); the arrays are checked by writeReport. */
export async function loadReportInput(store: ArtifactStore, runArtifactKey: string): Promise<ReportInput> {
  const context = `artifact '${runArtifactKey}' file '${REPORT_INPUT_JSON}'`;
  let raw: unknown;
  try {
    raw = JSON.parse((await store.readBytes(runArtifactKey, REPORT_INPUT_JSON)).toString('utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw new IntegrityError(`${context} is not valid JSON`);
    throw err;
  }
  const parsed = reportInputFileSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new IntegrityError(`${context} does not match the report input format:\n${lines.join('\n')}`);
  }
  const [stimuli, samples, measured, predicted] = await Promise.all(
    ARRAYS.map(async (name) =>
      parseNpy(
        await store.readBytes(runArtifactKey, `${name}.npy`),
        `artifact '${runArtifactKey}' file '${name}.npy'`,
      ),
    ),
  );
  const { encoding, ...rest } = parsed.data;
  return {
    ...rest,
    stimuli: stimuli!,
    samples: samples!,
    encoding: { ...encoding, measured: measured!, predicted: predicted! },
  };
}

/** The key of a run's rendered report. */
export function reportKey(runId: string): string {
  return `runs/${runId}/report`;
}

/** Renders a run's report into outDir and stores it as runs/<run>/report (replacing an older rendering). */
export async function renderAndStoreReport(
  store: ArtifactStore,
  runId: string,
  input: ReportInput,
  outDir: string,
): Promise<{ key: string; files: string[] }> {
  const { files } = await writeReport(input, outDir);
  const key = reportKey(runId);
  const source = await store.ref(reportInputKey(runId));
  // a newer renderer may draw the same run differently: the stored report is replaced, not refused
  await store.put(
    key,
    files.map((path) => ({ path, fromFile: join(outDir, path) })),
    { run: runId, stage: 'report', inputs: { reportInput: source } },
    { overwrite: true },
  );
  return { key, files };
}
