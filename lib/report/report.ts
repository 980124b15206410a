/**
 * The run report: a self-contained static page (index.html plus PNG tiles and SVG charts, no network) that
 * shows a run the way a researcher judges it: header (config, data, code, backend, machine, stage times and
 * cache hits), the metrics table against chance, the baseline and the regression verdict, the reconstruction
 * grid, measured vs predicted voxel patterns with per-ROI correlations, loss curves, and every artifact key.
 * writeComparison puts two runs side by side (metric deltas, reconstruction grids).
 * Rendering is deterministic (no clock, no randomness), so the same input stores as the same artifact.
 */
import { BadInputError } from '../errors.js';
import { metricDefinition } from '../metrics/definitions.js';
import { describeAttempt, type RunRecord } from '../pipeline/run-record.js';
import { AGAINST, describeTest, type Check, type Verdict } from '../pipeline/regression.js';
import type { NdArray } from '../tensors/ndarray.js';
import { esc, fmtDelta, fmtNumber, fmtSeconds } from './format.js';
import {
  chartFigure,
  facts,
  imageGrid,
  keyHtml,
  page,
  table,
  writeFiles,
  type Files,
  type GridGroup,
  type Tile,
} from './html.js';
import { rgbTilePng, upscaleFactor } from './png.js';
import { itemPearson, meanItemPearson, roiPearson } from './stats.js';
import { barChart, chooseYScale, lineChart, type Band } from './svg.js';

export interface ReportRun extends RunRecord {
  configName: string;
  dataset: string;
  subject: string;
  codeVersion: string;
  /** e.g. 'tensorflow (libtensorflow 2.21.0, 2 threads)' */
  backend: string;
  machine: string;
}

export interface EncodingResult {
  /** float32 [N, K] */
  measured: NdArray;
  /** float32 [N, K] */
  predicted: NdArray;
  roiNames: string[];
  /** Contiguous voxel groups, in order; they sum to K. */
  roiSizes: number[];
}

export interface LossCurve {
  stage: string;
  points: { step: number; loss: number }[];
}

export interface MetricValue {
  name: string;
  value: number;
  /** Range over the decoded samples. */
  min?: number;
  max?: number;
  chance?: number;
  /** The bootstrap interval over test items (item-mean metrics only). */
  low?: number;
  high?: number;
}

export interface BaselineValues {
  name: string;
  source: string;
  /** null: the baseline names the metric but has no value yet. */
  values: Record<string, number | null>;
}

export interface ArtifactEntry {
  stage: string;
  key: string;
  files: string[];
}

export interface ReportInput {
  run: ReportRun;
  /** uint8 [N, H, W, 3]: the test stimuli */
  stimuli: NdArray;
  /** uint8 [N, S, H, W, 3]: S decoded samples per test item */
  samples: NdArray;
  encoding: EncodingResult;
  lossCurves: LossCurve[];
  metrics: MetricValue[];
  baseline: BaselineValues | null;
  verdict: Verdict | null;
  /** How the metrics' intervals were computed (absent: the run's metrics have none). */
  intervalMethod?: string;
  artifacts: ArtifactEntry[];
  /** Where an artifact's key links to; without it keys are shown but not linked. */
  artifactUrl?: (key: string) => string;
}

/** How many test items get a measured vs predicted plot. */
const ENCODING_PLOTS = 4;
const MEASURED_COLOR = '#1f1f1f';
const PREDICTED_COLOR = '#d9480f';
const LOSS_COLOR = '#1a56b0';
const BAR_COLOR = '#2b8a3e';

// ---- input checks ----------------------------------------------------------------------------------

function shapeText(a: NdArray): string {
  return `${a.dtype} [${a.shape.join(', ')}]`;
}

/** Refuses arrays that do not match the data contract, naming the run and the array. */
function checkInput(input: ReportInput): void {
  const fail = (what: string) => new BadInputError(`report input of run '${input.run.runId}': ${what}`);
  const { stimuli, samples, encoding } = input;
  if (stimuli.dtype !== 'uint8' || stimuli.shape.length !== 4 || stimuli.shape[3] !== 3) {
    throw fail(`stimuli must be uint8 [N, H, W, 3], got ${shapeText(stimuli)}`);
  }
  const [n, h, w] = stimuli.shape;
  const s = samples.shape;
  if (samples.dtype !== 'uint8' || s.length !== 5 || s[0] !== n || s[2] !== h || s[3] !== w || s[4] !== 3) {
    throw fail(
      `samples must be uint8 [${n}, S, ${h}, ${w}, 3] to match the stimuli, got ${shapeText(samples)}`,
    );
  }
  if (s[1]! < 1) throw fail('samples hold no sample per item');
  const { measured, predicted, roiNames, roiSizes } = encoding;
  for (const [name, a] of [
    ['measured', measured],
    ['predicted', predicted],
  ] as const) {
    if ((a.dtype !== 'float32' && a.dtype !== 'float64') || a.shape.length !== 2) {
      throw fail(`encoding.${name} must be float32 [N, K], got ${shapeText(a)}`);
    }
  }
  if (measured.shape.join() !== predicted.shape.join()) {
    throw fail(
      `encoding.measured ${shapeText(measured)} and predicted ${shapeText(predicted)} differ in shape`,
    );
  }
  const k = measured.shape[1]!;
  const total = roiSizes.reduce((a, b) => a + b, 0);
  if (
    roiNames.length !== roiSizes.length ||
    roiSizes.some((v) => !Number.isInteger(v) || v < 1) ||
    total !== k
  ) {
    throw fail(
      `encoding ROIs (${roiNames.length} names, sizes [${roiSizes.join(', ')}]) must name positive sizes that sum to K = ${k}`,
    );
  }
}

// ---- rendering pieces ----------------------------------------------------------------------------

function stamp(iso: string | null): string {
  if (!iso) return '–';
  const t = Date.parse(iso);
  return Number.isNaN(t)
    ? iso
    : new Date(t)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC');
}

function wallSeconds(run: RunRecord): number | null {
  if (!run.startedAt || !run.finishedAt) return null;
  const s = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
  return Number.isFinite(s) ? s : null;
}

function stageSeconds(run: RunRecord): number {
  return run.stages.reduce((sum, st) => sum + (st.seconds ?? 0), 0);
}

export function verdictBanner(verdict: Verdict | null): string {
  if (!verdict)
    return '<p class="verdict">No regression verdict: the run was not compared with a baseline.</p>\n';
  const run = verdict.pinnedRunId
    ? ` and pinned run <span class="mono">${esc(verdict.pinnedRunId)}</span>`
    : verdict.lastGoodRunId
      ? ` and last good run <span class="mono">${esc(verdict.lastGoodRunId)}</span>`
      : '';
  const against = `baseline <b>${esc(verdict.baseline)}</b>${run}`;
  const method = verdict.method ? `<p class="muted">Tests: ${esc(verdict.method)}.</p>\n` : '';
  const counts = `${verdict.checked.length} metric${verdict.checked.length === 1 ? '' : 's'} checked${
    verdict.unfilled.length ? `, ${verdict.unfilled.length} not filled in the baseline yet` : ''
  }`;
  if (verdict.verdict === 'pass')
    return `<p class="verdict pass">Pass against ${against}: ${counts}.</p>\n${method}`;
  const n = verdict.failures.length;
  return `<p class="verdict fail">Regressed against ${against}: ${n} failure${n === 1 ? '' : 's'} (${counts}).</p>\n${method}`;
}

function header(input: ReportInput): string {
  const { run } = input;
  const wall = wallSeconds(run);
  const cached = run.stages.filter((s) => s.cached).length;
  const pairs: [string, string][] = [
    ['run', `<span class="mono">${esc(run.runId)}</span>`],
    ['config', esc(run.configName)],
    ['dataset', esc(run.dataset)],
    ['subject', esc(run.subject)],
    ['code version', `<span class="mono">${esc(run.codeVersion)}</span>`],
    ['backend', esc(run.backend)],
    ['machine', esc(run.machine)],
    ['status', esc(run.status)],
    ['started', stamp(run.startedAt)],
    ['finished', stamp(run.finishedAt)],
    ['wall time', wall === null ? '–' : fmtSeconds(wall)],
    ['stage time', `${fmtSeconds(stageSeconds(run))} (${run.stages.length} stages, ${cached} cached)`],
  ];
  const rows = run.stages.map((st) => {
    const progress = st.totalSteps
      ? `${st.step ?? 0} / ${st.totalSteps}`
      : st.step !== undefined
        ? String(st.step)
        : '';
    return (
      `<tr><td class="mono name">${esc(st.name)}</td><td>${esc(st.status)}</td>` +
      `<td>${st.cached ? '<span class="badge">cached</span>' : ''}</td>` +
      `<td class="num">${st.seconds === null ? '–' : fmtSeconds(st.seconds)}</td>` +
      `<td class="num">${progress}</td><td class="num">${st.loss === undefined ? '' : fmtNumber(st.loss)}</td></tr>`
    );
  });
  return (
    `<header>\n<h1>LEA run report: ${esc(run.runId)}</h1>\n<p class="sub">${esc(run.configName)} · ${esc(run.dataset)} ${esc(run.subject)}</p>\n` +
    facts(pairs) +
    verdictBanner(input.verdict) +
    `<h3>Stages</h3>\n` +
    table(
      'stages',
      '<th>stage</th><th>status</th><th>cache</th><th class="num">time</th><th class="num">step</th><th class="num">last loss</th>',
      rows,
      'No stage recorded.',
    ) +
    attemptList(run) +
    `</header>\n`
  );
}

/** Stages that took more than one attempt: each attempt's worker, span, steps and why it ended. */
function attemptList(run: RunRecord): string {
  const items = run.stages
    .filter((st) => (st.attempts?.length ?? 0) > 1)
    .flatMap((st) =>
      st.attempts!.map(
        (a) => `<li><span class="mono">${esc(st.name)}</span> ${esc(describeAttempt(a))}</li>`,
      ),
    );
  return items.length ? `<h3>Retried stages</h3>\n<ul class="attempts">\n${items.join('\n')}\n</ul>\n` : '';
}

function checkText(c: Check): string {
  const against = AGAINST[c.against];
  if (c.actual === null) return `missing (${against} ${fmtNumber(c.expected)})`;
  const test = c.test ? `; ${describeTest(c)}` : '';
  return `${against} ${fmtNumber(c.expected)}: ${fmtDelta(c.delta!)} (tolerance ${fmtNumber(c.tolerance)}${test})`;
}

/** What the verdict says about one metric (each comparison with its test), and whether that is a failure. */
function metricVerdict(name: string, verdict: Verdict | null): { html: string; failed: boolean } {
  if (!verdict) return { html: '', failed: false };
  const failures = verdict.failures.filter((f) => f.metric === name);
  const checks = (verdict.checks ?? failures).filter((c) => c.metric === name);
  const lines = checks.map((c) => esc(checkText(c))).join('<br>');
  if (failures.length) return { html: `<span class="fail-text">regressed</span><br>${lines}`, failed: true };
  if (verdict.checked.includes(name) || checks.length)
    return { html: `<span class="pass-text">pass</span>${lines ? `<br>${lines}` : ''}`, failed: false };
  if (verdict.unfilled.includes(name))
    return { html: '<span class="muted">baseline not filled</span>', failed: false };
  return { html: '<span class="muted">not checked</span>', failed: false };
}

/** A numeric cell whose data-value keeps the full-precision number (for tools and tests). */
function numCell(v: number | null | undefined, extraClass = ''): string {
  const cls = `num${extraClass ? ` ${extraClass}` : ''}`;
  if (v === undefined) return `<td class="${cls}">–</td>`;
  if (v === null) return `<td class="${cls} muted">not filled</td>`;
  return `<td class="${cls}" data-value="${v}">${fmtNumber(v)}</td>`;
}

/** The value with its interval as a whisker beneath it, where the metric has one. */
function valueCell(m: MetricValue): string {
  if (m.low === undefined || m.high === undefined) return numCell(m.value);
  return (
    `<td class="num" data-value="${m.value}" data-low="${m.low}" data-high="${m.high}">${fmtNumber(m.value)}` +
    `<br><span class="muted">[${fmtNumber(m.low)}, ${fmtNumber(m.high)}]</span></td>`
  );
}

function rangeCell(m: MetricValue): string {
  if (m.min === undefined || m.max === undefined) return '<td class="num">–</td>';
  return `<td class="num" data-min="${m.min}" data-max="${m.max}">${fmtNumber(m.min)} – ${fmtNumber(m.max)}</td>`;
}

/** The metric's definition, marked when it is not computed as the paper computes it. */
function definitionCell(name: string): string {
  const d = metricDefinition(name);
  if (!d) return '<td class="muted">not a metric this version computes</td>';
  const mark = d.paper
    ? '<b>paper</b>'
    : d.standInFor
      ? `stand-in for ${esc(d.standInFor)}`
      : 'not the paper’s';
  return `<td class="definition" data-paper="${d.paper}">${mark}: ${esc(d.definition)}</td>`;
}

function metricsSection(input: ReportInput): string {
  const { metrics, baseline, verdict } = input;
  const names = new Set(metrics.map((m) => m.name));
  // a metric the baseline checks but the run lacks is a failure too: it gets its own row
  const missing = [...new Set((verdict?.failures ?? []).map((f) => f.metric))].filter((n) => !names.has(n));
  const row = (name: string, m: MetricValue | undefined) => {
    const v = metricVerdict(name, verdict);
    const base = baseline ? baseline.values[name] : undefined;
    const value = m ? valueCell(m) : '<td class="num fail-text">missing</td>';
    return (
      `<tr${v.failed ? ' class="fail"' : ''} data-metric="${esc(name)}"><td class="mono name">${esc(name)}</td>${value}` +
      `${m ? rangeCell(m) : '<td class="num">–</td>'}${numCell(m?.chance)}${numCell(base)}<td>${v.html}</td>` +
      `${definitionCell(name)}</tr>`
    );
  };
  const isReference = (name: string) => metricDefinition(name)?.reference === true;
  const rows = metrics
    .filter((m) => !isReference(m.name))
    .map((m) => row(m.name, m))
    .concat(missing.map((n) => row(n, undefined)));
  const references = metrics.filter((m) => isReference(m.name)).map((m) => row(m.name, m));
  const samples = input.samples.shape[1];
  const head =
    '<th>metric</th><th class="num">value</th><th class="num">min – max</th><th class="num">chance</th>' +
    `<th class="num">baseline${baseline ? `<br><span class="muted">${esc(baseline.name)}</span>` : ''}</th><th>verdict</th>` +
    '<th>definition</th>';
  const baseNote = baseline
    ? `<p class="muted">Baseline <b>${esc(baseline.name)}</b>: ${esc(baseline.source)}.</p>\n`
    : '<p class="muted">No baseline.</p>\n';
  return (
    `<section id="metrics" class="first">\n<h2>Metrics</h2>\n` +
    `<p>Value: mean over the ${samples} decoded samples (min – max across them where a metric is per sample)` +
    `${input.intervalMethod ? `; beneath it, in brackets, its ${esc(input.intervalMethod)}` : ''}.</p>\n` +
    table('metrics', head, rows, 'No metric recorded.') +
    baseNote +
    (references.length
      ? '<h3>Reference rows</h3>\n<p class="muted">Not results: the same scores on a shuffled pairing, and a ridge ' +
        'straight from voxels to the image features, which show how far above chance the task is.</p>\n' +
        table('reference-metrics', head, references, '')
      : '') +
    '</section>\n'
  );
}

/** PNG tiles of one array of images ([N, H, W, 3] or [N, S, H, W, 3]) written under img/. */
function tiles(files: Files, images: NdArray, name: string, what: string): Tile[][] {
  const [n = 0, ...rest] = images.shape;
  const perItem = rest.length === 4 ? rest[0]! : 1;
  const [h, w] = images.shape.slice(-3) as [number, number];
  const f = upscaleFactor(h, w);
  return Array.from({ length: n }, (_, i) =>
    Array.from({ length: perItem }, (_, s) => {
      const src = perItem === 1 ? `img/${name}-${i}.png` : `img/${name}-${i}-${s + 1}.png`;
      files.set(src, rgbTilePng(images, i * perItem + s));
      const alt = perItem === 1 ? `${what} of test item ${i}` : `${what} ${s + 1} of test item ${i}`;
      return { src, alt, width: w * f, height: h * f, pixelated: f > 1 };
    }),
  );
}

function sampleColumns(samples: Tile[][]): GridGroup['columns'] {
  const count = samples[0]?.length ?? 0;
  return Array.from({ length: count }, (_, s) => ({
    label: `sample ${s + 1}`,
    tiles: samples.map((row) => row[s] ?? null),
  }));
}

function reconstructionSection(files: Files, input: ReportInput): string {
  const stim = tiles(files, input.stimuli, 'stimulus', 'stimulus');
  const samp = tiles(files, input.samples, 'sample', 'sample');
  const [n, , h, w] = input.samples.shape;
  const grid = imageGrid(
    [
      { heading: '', columns: [{ label: 'stimulus', tiles: stim.map((r) => r[0] ?? null) }] },
      { heading: '', columns: sampleColumns(samp) },
    ],
    stim.map((_, i) => String(i)),
  );
  return (
    `<section id="reconstructions">\n<h2>Reconstructions</h2>\n` +
    `<p>Each of the ${n} test stimuli (${h}×${w} px) beside its ${samp[0]?.length ?? 0} decoded samples; the row label is the test item's index.</p>\n` +
    `${grid}</section>\n`
  );
}

function roiBands(e: EncodingResult): Band[] {
  let start = 0;
  return e.roiSizes.map((size, i) => {
    const band = { from: start - 0.5, to: start + size - 0.5, label: e.roiNames[i]! };
    start += size;
    return band;
  });
}

/** Up to `count` item indices spread evenly over [0, n). */
function spreadIndices(n: number, count: number): number[] {
  if (n <= count) return Array.from({ length: n }, (_, i) => i);
  return Array.from({ length: count }, (_, i) => Math.round((i * (n - 1)) / (count - 1)));
}

function encodingSection(files: Files, input: ReportInput): string {
  const e = input.encoding;
  const [n = 0, k = 0] = e.measured.shape;
  const perRoi = roiPearson(e.measured, e.predicted, e.roiSizes);
  const dropped = perRoi
    .map((r, i) => (r.undefinedItems ? `${e.roiNames[i]}: ${r.undefinedItems}` : ''))
    .filter(Boolean);
  const bars = chartFigure(
    files,
    'svg/roi-correlation.svg',
    barChart({
      title: 'Per-ROI Pearson r between measured and predicted voxels, mean over test items',
      yLabel: 'mean Pearson r',
      color: BAR_COLOR,
      bars: perRoi.map((r, i) => ({
        label: e.roiNames[i]!,
        sublabel: `${e.roiSizes[i]} voxels`,
        value: r.mean,
      })),
    }),
    'per-ROI correlation bars',
    `Per ROI: Pearson r between measured and predicted voxels of that ROI, mean over the ${n} test items` +
      `${dropped.length ? `; items left out for a constant pattern: ${esc(dropped.join(', '))}` : ''}.`,
  );
  const overall = meanItemPearson(e.measured, e.predicted);
  const bands = roiBands(e);
  const plots = spreadIndices(n, ENCODING_PLOTS).map((i) => {
    const series = (label: string, color: string, data: NdArray['data']) => ({
      label,
      color,
      points: Array.from({ length: k }, (_, v) => [v, Number(data[i * k + v])] as [number, number]),
    });
    const chart = lineChart({
      title: `Measured vs predicted voxel pattern, test item ${i}`,
      xLabel: 'voxel',
      yLabel: 'response',
      yScale: 'linear',
      bands,
      series: [
        series('measured', MEASURED_COLOR, e.measured.data),
        series('predicted', PREDICTED_COLOR, e.predicted.data),
      ],
    });
    const r = itemPearson(e.measured, e.predicted, i);
    return chartFigure(
      files,
      `svg/encoding-item-${i}.svg`,
      chart,
      `measured and predicted voxels of test item ${i}`,
      `Test item ${i}: Pearson r = ${fmtNumber(r)} over all ${k} voxels.`,
    );
  });
  return (
    `<section id="encoding">\n<h2>Encoding</h2>\n` +
    `<p>Predicted fMRI of the ${n} test items against the measured responses (K = ${k} voxels in ${e.roiSizes.length} ROIs). ` +
    `Mean over items of Pearson r across all voxels: <b>${fmtNumber(overall.mean)}</b>` +
    `${overall.undefinedItems ? ` (${overall.undefinedItems} items with a constant pattern left out)` : ''}.</p>\n` +
    `${bars}\n<h3>Voxel patterns of ${plots.length} test items</h3>\n<div class="charts">\n${plots.join('\n')}\n</div>\n</section>\n`
  );
}

function lossSection(files: Files, input: ReportInput): string {
  const figures = input.lossCurves.map((curve, i) => {
    const chart = lineChart({
      title: `Training loss of ${curve.stage}`,
      xLabel: 'step',
      yLabel: 'loss',
      yScale: chooseYScale(curve.points.map((pt) => pt.loss)),
      series: [
        { label: curve.stage, color: LOSS_COLOR, points: curve.points.map((pt) => [pt.step, pt.loss]) },
      ],
    });
    const finite = curve.points.filter((pt) => Number.isFinite(pt.loss));
    const last = finite.at(-1);
    const best = finite.reduce((b, pt) => (pt.loss < b.loss ? pt : b), finite[0]!);
    const bad = curve.points.length - finite.length;
    const caption = last
      ? `${esc(curve.stage)}: ${curve.points.length} points, last loss ${fmtNumber(last.loss)} at step ${last.step}, ` +
        `lowest ${fmtNumber(best.loss)} at step ${best.step}` +
        `${bad ? `; <span class="fail-text">${bad} non-finite losses</span>` : ''}.`
      : `${esc(curve.stage)}: no finite loss recorded.`;
    const slug = curve.stage.replace(/[^A-Za-z0-9_-]+/g, '-');
    return chartFigure(
      files,
      `svg/loss-${i + 1}-${slug}.svg`,
      chart,
      `loss curve of ${curve.stage}`,
      caption,
    );
  });
  const body = figures.length
    ? `<div class="charts">\n${figures.join('\n')}\n</div>\n`
    : '<p class="muted">No training stage recorded a loss.</p>\n';
  return `<section id="loss">\n<h2>Loss curves</h2>\n${body}</section>\n`;
}

function artifactsSection(input: ReportInput): string {
  const rows = input.artifacts.map((a) => {
    const key = input.artifactUrl
      ? `<a href="${esc(input.artifactUrl(a.key))}">${keyHtml(a.key)}</a>`
      : keyHtml(a.key);
    return (
      `<tr><td class="mono name">${esc(a.stage)}</td><td class="mono">${key}<br><span class="muted">artifacts/${keyHtml(a.key)}/manifest.json</span></td>` +
      `<td class="mono">${a.files.map(esc).join('<br>')}</td></tr>`
    );
  });
  return (
    `<section id="artifacts">\n<h2>Artifacts</h2>\n<p>Every artifact of the run by its key; its manifest (files, sizes, sha256, lineage) is at the path shown, under the bucket's prefix.</p>\n` +
    table(
      'artifacts',
      '<th>stage</th><th>key and manifest</th><th>files</th>',
      rows,
      'No artifact recorded.',
    ) +
    '</section>\n'
  );
}

const NAV =
  '<nav><a href="#metrics">Metrics</a><a href="#reconstructions">Reconstructions</a><a href="#encoding">Encoding</a>' +
  '<a href="#loss">Loss curves</a><a href="#artifacts">Artifacts</a></nav>\n';

/**
 * Writes the report of one run into outDir; returns the files written (paths relative to outDir, index.html
 * first). Files of an earlier render that this one does not write are left in place but not in the list.
 */
export async function writeReport(input: ReportInput, outDir: string): Promise<{ files: string[] }> {
  checkInput(input);
  const files: Files = new Map();
  files.set('index.html', ''); // first in the list; filled once the sections have produced their files
  const body =
    header(input) +
    NAV +
    metricsSection(input) +
    reconstructionSection(files, input) +
    encodingSection(files, input) +
    lossSection(files, input) +
    artifactsSection(input);
  files.set('index.html', page(`LEA report ${input.run.runId}`, body));
  return { files: await writeFiles(outDir, files) };
}

// ---- comparison ----------------------------------------------------------------------------------

function sameImages(a: NdArray, b: NdArray): boolean {
  const bytes = (x: NdArray) => Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength);
  return a.shape.join() === b.shape.join() && bytes(a).equals(bytes(b));
}

function compareHeader(a: ReportInput, b: ReportInput): string {
  const verdictCell = (v: Verdict | null) =>
    v
      ? `<span class="badge ${v.verdict === 'pass' ? 'pass' : 'fail'}">${v.verdict}</span> vs ${esc(v.baseline)}`
      : '–';
  const wall = (r: RunRecord) => {
    const s = wallSeconds(r);
    return s === null ? '–' : fmtSeconds(s);
  };
  const fields: [string, (x: ReportInput) => string][] = [
    ['run', (x) => `<span class="mono">${esc(x.run.runId)}</span>`],
    ['config', (x) => esc(x.run.configName)],
    ['dataset', (x) => `${esc(x.run.dataset)} ${esc(x.run.subject)}`],
    ['code version', (x) => `<span class="mono">${esc(x.run.codeVersion)}</span>`],
    ['backend', (x) => esc(x.run.backend)],
    ['machine', (x) => esc(x.run.machine)],
    ['status', (x) => esc(x.run.status)],
    ['finished', (x) => stamp(x.run.finishedAt)],
    ['wall time', (x) => wall(x.run)],
    [
      'stage time',
      (x) => `${fmtSeconds(stageSeconds(x.run))} (${x.run.stages.filter((s) => s.cached).length} cached)`,
    ],
    ['verdict', (x) => verdictCell(x.verdict)],
  ];
  const rows = fields.map(([label, f]) => `<tr><th>${label}</th><td>${f(a)}</td><td>${f(b)}</td></tr>`);
  return table('compare-header', '<th></th><th>run A</th><th>run B</th>', rows, '');
}

function compareMetrics(a: ReportInput, b: ReportInput): string {
  const byName = (x: ReportInput) => new Map(x.metrics.map((m) => [m.name, m]));
  const ma = byName(a);
  const mb = byName(b);
  const names = [...new Set([...ma.keys(), ...mb.keys()])];
  const failed = (x: ReportInput, name: string) => metricVerdict(name, x.verdict).failed;
  const rows = names.map((name) => {
    const va = ma.get(name)?.value;
    const vb = mb.get(name)?.value;
    const delta = va !== undefined && vb !== undefined ? vb - va : undefined;
    // three significant digits are plenty for a relative change
    const rel =
      delta !== undefined && va
        ? `${fmtDelta(Number(((100 * delta) / Math.abs(va)).toPrecision(3)))} %`
        : '–';
    const chance = ma.get(name)?.chance ?? mb.get(name)?.chance;
    return (
      `<tr data-metric="${esc(name)}"><td class="mono name">${esc(name)}</td>${numCell(va, failed(a, name) ? 'fail' : '')}` +
      `${numCell(vb, failed(b, name) ? 'fail' : '')}` +
      `<td class="num"${delta === undefined ? '' : ` data-value="${delta}"`}>${delta === undefined ? '–' : fmtDelta(delta)}</td>` +
      `<td class="num">${rel}</td>${numCell(chance)}</tr>`
    );
  });
  return (
    table(
      'metrics',
      '<th>metric</th><th class="num">run A</th><th class="num">run B</th>' +
        '<th class="num">Δ (B − A)</th><th class="num">Δ %</th><th class="num">chance</th>',
      rows,
      'Neither run recorded a metric.',
    ) + `<p class="muted">Red cells: the metric regressed in that run's own verdict.</p>\n`
  );
}

function compareGrid(files: Files, a: ReportInput, b: ReportInput): string {
  const run = (x: ReportInput, tag: string) => ({
    stim: tiles(files, x.stimuli, `${tag}-stimulus`, 'stimulus'),
    samp: tiles(files, x.samples, `${tag}-sample`, `run ${tag.toUpperCase()} sample`),
  });
  const ra = run(a, 'a');
  const shared = sameImages(a.stimuli, b.stimuli);
  // the same test set: one stimulus column; otherwise each run's samples sit beside its own stimuli
  const rb = shared ? { stim: [], samp: tiles(files, b.samples, 'b-sample', 'run B sample') } : run(b, 'b');
  const n = Math.max(ra.stim.length, rb.samp.length);
  const stimColumn = (stim: Tile[][]) => ({
    label: 'stimulus',
    tiles: Array.from({ length: n }, (_, i) => stim[i]?.[0] ?? null),
  });
  const pad = (samp: Tile[][]) => Array.from({ length: n }, (_, i) => samp[i] ?? []);
  const groups: GridGroup[] = shared
    ? [
        { heading: '', columns: [stimColumn(ra.stim)] },
        { heading: `run A: ${a.run.runId}`, columns: sampleColumns(pad(ra.samp)) },
        { heading: `run B: ${b.run.runId}`, columns: sampleColumns(pad(rb.samp)) },
      ]
    : [
        { heading: `run A: ${a.run.runId}`, columns: [stimColumn(ra.stim), ...sampleColumns(pad(ra.samp))] },
        { heading: `run B: ${b.run.runId}`, columns: [stimColumn(rb.stim), ...sampleColumns(pad(rb.samp))] },
      ];
  const note = shared
    ? 'Both runs decoded the same test stimuli.'
    : '<span class="fail-text">The runs have different test stimuli</span>: each run is shown beside its own.';
  return `<p>${note}</p>\n${imageGrid(
    groups,
    Array.from({ length: n }, (_, i) => String(i)),
  )}`;
}

/** Writes a side-by-side page of two runs (`lea report --compare A B`) into outDir. */
export async function writeComparison(
  a: ReportInput,
  b: ReportInput,
  outDir: string,
): Promise<{ files: string[] }> {
  checkInput(a);
  checkInput(b);
  const files: Files = new Map();
  files.set('index.html', '');
  const body =
    `<header>\n<h1>LEA runs compared</h1>\n<p class="sub">A: ${esc(a.run.runId)} · B: ${esc(b.run.runId)}</p>\n${compareHeader(a, b)}</header>\n` +
    `<section id="metrics" class="first">\n<h2>Metrics</h2>\n${compareMetrics(a, b)}</section>\n` +
    `<section id="reconstructions">\n<h2>Reconstructions</h2>\n${compareGrid(files, a, b)}</section>\n`;
  files.set('index.html', page(`LEA runs ${a.run.runId} vs ${b.run.runId}`, body));
  return { files: await writeFiles(outDir, files) };
}
