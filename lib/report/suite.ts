/**
 * A suite's report, laid out as the paper's tables: a row per subject (each a link to its own run's report),
 * the mean over subjects, and the baseline's values beside them; the reference rows (shuffled pairing, voxel
 * ridge) in a table of their own. Also the plain-text form `lea run --wait` and `lea status` print.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metricDefinition } from '../metrics/definitions.js';
import type { Verdict } from '../pipeline/regression.js';
import { memberLabel, type SuiteMember } from '../pipeline/suite.js';
import { esc, fmtNumber } from './format.js';
import { page, table } from './html.js';
import { verdictBanner, type BaselineValues } from './report.js';

export interface SuiteReportInput {
  suiteId: string;
  name: string;
  codeVersion: string;
  startedAt: string;
  finishedAt: string;
  members: SuiteMember[];
  mean: Record<string, number>;
  /** The standard deviation over the runs, and the mean's bootstrap interval over pooled test items. */
  sd?: Record<string, number>;
  metricIntervals?: Record<string, [number, number]>;
  intervalMethod?: string;
  baseline: BaselineValues | null;
  verdict: Verdict | null;
}

export const SUITE_JSON = 'suite.json';

/** What the table itself reads: each run's subject, status and metrics, their mean, sd and interval, the baseline. */
type SuiteTable = Pick<SuiteReportInput, 'mean' | 'baseline' | 'sd' | 'metricIntervals'> & {
  members: Pick<SuiteMember, 'subject' | 'seed' | 'point' | 'status' | 'metrics'>[];
};

/** Metric columns: the paper's metrics first, then the others (stand-ins), each group by name. */
function columns(input: SuiteTable, reference: boolean): string[] {
  const names = new Set([...input.members.flatMap((m) => Object.keys(m.metrics))]);
  for (const n of Object.keys(input.baseline?.values ?? {})) names.add(n);
  const isRef = (n: string) => metricDefinition(n)?.reference === true;
  const paper = (n: string) => (metricDefinition(n)?.paper ? 0 : 1);
  return [...names]
    .filter((n) => isRef(n) === reference)
    .sort((a, b) => paper(a) - paper(b) || (a < b ? -1 : 1));
}

/** How many completed members a metric's mean covers, when fewer than all completed ones. */
function coverage(input: SuiteTable, name: string): string {
  const done = input.members.filter((m) => m.status === 'completed');
  const n = done.filter((m) => Number.isFinite(m.metrics[name])).length;
  return n < done.length ? ` (${n} of ${done.length})` : '';
}

/** The mean's cell: the value, ± the sd over runs, and the interval beneath (data-* keep the full numbers). */
function meanCell(input: SuiteTable, c: string, failed: boolean): string {
  const v = input.mean[c];
  if (v === undefined) return `<td class="num${failed ? ' fail' : ''}">–</td>`;
  const sd = input.sd?.[c];
  const ci = input.metricIntervals?.[c];
  const data = `data-value="${v}"${sd === undefined ? '' : ` data-sd="${sd}"`}${ci ? ` data-low="${ci[0]}" data-high="${ci[1]}"` : ''}`;
  return (
    `<td class="num${failed ? ' fail' : ''}" ${data}>${fmtNumber(v)}${sd === undefined ? '' : ` ± ${fmtNumber(sd)}`}` +
    `${ci ? `<br><span class="muted">[${fmtNumber(ci[0])}, ${fmtNumber(ci[1])}]</span>` : ''}</td>`
  );
}

function suiteTableHtml(input: SuiteReportInput, cols: string[], cls: string): string {
  const failed = new Set((input.verdict?.failures ?? []).map((f) => f.metric));
  const cell = (v: number | null | undefined) =>
    `<td class="num">${v === null || v === undefined ? '–' : fmtNumber(v)}</td>`;
  const head =
    '<th>run</th><th>id</th>' +
    cols
      .map((c) => {
        const d = metricDefinition(c);
        const kind = d?.paper ? 'paper' : d?.standInFor ? `stand-in for ${d.standInFor}` : '';
        return `<th class="num mono" title="${esc(d?.definition ?? '')}">${esc(c)}${kind ? `<br><span class="muted">${esc(kind)}</span>` : ''}</th>`;
      })
      .join('');
  const rows = input.members.map(
    (m) =>
      `<tr data-subject="${esc(m.subject)}"${m.seed === undefined ? '' : ` data-seed="${m.seed}"`}><td>${esc(memberLabel(m))}</td><td class="mono">${esc(m.runId)}` +
      `${m.status === 'completed' ? '' : ` <span class="fail-text">${esc(m.status)}${m.error ? `: ${esc(m.error)}` : ''}</span>`}` +
      `<br><span class="muted">lea report ${esc(m.runId)}</span></td>${cols.map((c) => cell(m.metrics[c])).join('')}</tr>`,
  );
  rows.push(
    `<tr class="mean" data-subject="mean"><td><b>mean</b></td><td>over ${input.members.filter((m) => m.status === 'completed').length} runs</td>` +
      cols.map((c) => meanCell(input, c, failed.has(c))).join('') +
      '</tr>',
  );
  if (input.baseline)
    rows.push(
      `<tr class="baseline" data-subject="baseline"><td>baseline</td><td>${esc(input.baseline.name)}</td>` +
        cols.map((c) => cell(input.baseline!.values[c])).join('') +
        '</tr>',
    );
  return table(cls, head, rows, 'No run.');
}

export function suiteHtml(input: SuiteReportInput): string {
  const notes = columns(input, false)
    .map((c) => ({ c, n: coverage(input, c) }))
    .filter((x) => x.n)
    .map((x) => `<li><span class="mono">${esc(x.c)}</span>: mean of${esc(x.n)}</li>`);
  const references = columns(input, true);
  const body =
    `<h1>LEA suite ${esc(input.name)}</h1>\n` +
    `<p class="muted"><span class="mono">${esc(input.suiteId)}</span> · code ${esc(input.codeVersion)} · ` +
    `${esc(input.startedAt)} – ${esc(input.finishedAt)}</p>\n` +
    verdictBanner(input.verdict) +
    '<section id="metrics" class="first">\n<h2>Metrics by run (subject, seed)</h2>\n' +
    "<p>Each run's metrics (a run's own report gives definitions, ranges and chance levels); the mean is over " +
    'the runs that completed, ± their standard deviation (the spread over subjects or seeds), and the verdict ' +
    'judges it against the baseline.</p>\n' +
    (input.intervalMethod
      ? `<p class="muted">Intervals beneath the mean: ${esc(input.intervalMethod)}. They cover the sampling of ` +
        'test items only; the ± is the spread over runs.</p>\n'
      : '') +
    suiteTableHtml(input, columns(input, false), 'suite') +
    (notes.length ? `<ul class="muted">${notes.join('')}</ul>\n` : '') +
    (input.baseline
      ? `<p class="muted">Baseline <b>${esc(input.baseline.name)}</b>: ${esc(input.baseline.source)}.</p>\n`
      : '<p class="muted">No baseline.</p>\n') +
    (references.length
      ? '<h3>Reference rows</h3>\n<p class="muted">Not results: how far above chance each subject\'s task is.</p>\n' +
        suiteTableHtml({ ...input, baseline: null }, references, 'suite-references')
      : '') +
    '</section>\n';
  return page(`LEA suite ${input.suiteId}`, body);
}

/** Metrics as rows, subjects (then mean and baseline) as columns: the table turned for a terminal. */
export function suiteText(input: SuiteTable): string {
  const cols = [...columns(input, false), ...columns(input, true)];
  // a sweep's points are different settings, not replicates: no mean over them (lea compare SWEEP compares them)
  const mean = !input.members.some((m) => m.point !== undefined);
  const heads = [
    'metric',
    ...input.members.map(memberLabel),
    ...(mean ? ['mean'] : []),
    ...(input.sd ? ['sd'] : []),
    ...(input.metricIntervals ? ['interval'] : []),
    ...(input.baseline ? ['baseline'] : []),
  ];
  const fmt = (v: number | null | undefined) => (v === null || v === undefined ? '–' : fmtNumber(v));
  const ci = (c: string) => {
    const b = input.metricIntervals?.[c];
    return b ? `[${fmtNumber(b[0])}, ${fmtNumber(b[1])}]` : '–';
  };
  const rows = cols.map((c) => [
    c,
    ...input.members.map((m) => fmt(m.metrics[c])),
    ...(mean ? [fmt(input.mean[c]) + coverage(input, c)] : []),
    ...(input.sd ? [fmt(input.sd[c])] : []),
    ...(input.metricIntervals ? [ci(c)] : []),
    ...(input.baseline ? [fmt(input.baseline.values[c])] : []),
  ]);
  const widths = heads.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(heads), ...rows.map(line)].join('\n');
}

/** Writes index.html and suite.json (the input) into outDir; returns the paths written. */
export async function writeSuiteReport(input: SuiteReportInput, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  await writeFile(join(outDir, 'index.html'), suiteHtml(input));
  await writeFile(join(outDir, SUITE_JSON), JSON.stringify(input, null, 2) + '\n');
  return ['index.html', SUITE_JSON];
}
