/**
 * A sweep's page (`lea report SWEEP`): a row per point with every metric, its interval and the paired difference
 * from the baseline point with its corrected p (lib/pipeline/sweep.ts compareSweep, what `lea compare` prints for
 * the two runs); what the declared family can detect at all; a parallel-coordinates chart of the swept keys and
 * the plotted metrics and a line chart per swept key and plotted metric, as static SVG beside the page; the
 * best point of a metric marked only where its difference is significant; failed points with their errors.
 */
import { metricDefinition } from '../metrics/definitions.js';
import type { SweepComparison, SweepRow } from '../pipeline/sweep.js';
import { esc, fmtDelta, fmtNumber } from './format.js';
import { chartFigure, facts, page, table, writeFiles, type Files } from './html.js';
import { chooseYScale, lineChart, parallelChart, type Series, type YScale } from './svg.js';

export interface SweepReportInput {
  suiteId: string;
  name: string;
  codeVersion: string;
  startedAt: string;
  finishedAt: string;
  comparison: SweepComparison;
}

export const SWEEP_JSON = 'sweep.json';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

/** The metrics the charts plot: the declared family, else every metric with an interval (the item means). */
function plotted(c: SweepComparison): string[] {
  if (c.settings.family) return c.settings.family.filter((m) => c.metrics.includes(m));
  return c.metrics.filter((m) => c.rows.some((r) => r.metricIntervals?.[m]));
}

/** A swept key's values as numbers for an axis: themselves when all are numbers, else their index. */
function keyAxis(
  c: SweepComparison,
  key: string,
): { at: (r: SweepRow) => number; scale: YScale; ticks?: Map<number, string> } {
  const values = [...new Map(c.rows.map((r) => [JSON.stringify(r.values[key]), r.values[key]])).values()];
  if (values.every((v) => typeof v === 'number'))
    return { at: (r) => r.values[key] as number, scale: chooseYScale(values as number[]) };
  const index = new Map(values.map((v, i) => [JSON.stringify(v), i]));
  return {
    at: (r) => index.get(JSON.stringify(r.values[key]))!,
    scale: 'linear',
    ticks: new Map(values.map((v, i) => [i, typeof v === 'string' ? v : JSON.stringify(v)])),
  };
}

function metricCell(c: SweepComparison, r: SweepRow, m: string): string {
  const v = r.metrics?.[m];
  if (v === undefined) return '<td class="num">–</td>';
  const ci = r.metricIntervals?.[m];
  const d = r.comparisons?.find((x) => x.metric === m);
  const best = c.best[m] === r.name;
  const data =
    `data-metric="${esc(m)}" data-value="${v}"` +
    (ci ? ` data-low="${ci[0]}" data-high="${ci[1]}"` : '') +
    (d?.difference != null ? ` data-difference="${d.difference}"` : '') +
    (d?.interval ? ` data-difference-low="${d.interval[0]}" data-difference-high="${d.interval[1]}"` : '') +
    (d?.p !== undefined ? ` data-p="${d.p}"` : '') +
    (d?.pAdjusted !== undefined ? ` data-p-adjusted="${d.pAdjusted}"` : '');
  const diff =
    d?.difference == null
      ? ''
      : `<br>Δ ${fmtDelta(d.difference)}${d.interval ? ` [${fmtNumber(d.interval[0])}, ${fmtNumber(d.interval[1])}]` : ''}` +
        (d.p === undefined
          ? ''
          : `<br><span class="muted">p ${d.p.toPrecision(2)}${d.pAdjusted === undefined ? ' (not in family)' : ` (corr. ${d.pAdjusted.toPrecision(2)})`}</span>`);
  return (
    `<td class="num${best ? ' best' : ''}" ${data}>${best ? '★ ' : ''}${fmtNumber(v)}` +
    `${ci ? `<br><span class="muted">[${fmtNumber(ci[0])}, ${fmtNumber(ci[1])}]</span>` : ''}${diff}</td>`
  );
}

function pointsTable(c: SweepComparison): string {
  const head =
    '<th>point</th>' +
    c.metrics
      .map((m) => {
        const d = metricDefinition(m);
        const family =
          c.settings.family && !c.settings.family.includes(m)
            ? '<br><span class="muted">not in family</span>'
            : '';
        return `<th class="num mono" title="${esc(d?.definition ?? '')}">${esc(m)}${family}</th>`;
      })
      .join('');
  const rows = c.rows.map((r) => {
    const base = r.name === c.baseline ? ' <span class="badge">baseline</span>' : '';
    const runs = r.runIds.map((id) => `<br><span class="muted mono">lea report ${esc(id)}</span>`).join('');
    const failed =
      r.status === 'completed' ? '' : `<br><span class="fail-text">failed: ${esc(r.error ?? '')}</span>`;
    const cells =
      r.status === 'completed'
        ? c.metrics.map((m) => metricCell(c, r, m)).join('')
        : `<td colspan="${c.metrics.length}" class="fail">no metrics: the point failed</td>`;
    return `<tr data-point="${esc(r.name)}"${r.status === 'completed' ? '' : ' class="fail"'}><td>${esc(r.label)}${base}${failed}${runs}</td>${cells}</tr>`;
  });
  return `<div class="scroll">\n${table('sweep', head, rows, 'No point.')}</div>\n`;
}

function charts(files: Files, c: SweepComparison): string {
  const metrics = plotted(c);
  const done = c.rows.filter((r) => r.status === 'completed');
  if (done.length === 0 || metrics.length === 0) return '<p class="muted">No completed point to plot.</p>\n';
  const keyAxes = c.keys.map((k) => ({ key: k, ...keyAxis(c, k) }));
  const parallel = chartFigure(
    files,
    'svg/parallel.svg',
    parallelChart({
      title: `${c.keys.join(', ')} against ${metrics.join(', ')}`,
      axes: [
        ...keyAxes.map((a) => ({
          label: a.key,
          values: done.map(a.at),
          scale: a.scale,
          ...(a.ticks ? { tickLabels: a.ticks } : {}),
        })),
        ...metrics.map((m) => ({
          label: m,
          values: done.map((r) => r.metrics?.[m] ?? null),
          scale: 'linear' as const,
        })),
      ],
      lines: done.map((r, i) => ({
        label: r.label,
        color: r.name === c.baseline ? '#111' : COLORS[i % COLORS.length]!,
        width: r.name === c.baseline ? 2.5 : 1.5,
      })),
    }),
    'parallel coordinates of the sweep',
    'One line per completed point (the baseline point black and thicker), through its swept values and metrics.',
  );
  const lines = keyAxes.flatMap((a) => {
    const others = c.keys.filter((k) => k !== a.key);
    // one line per combination of the other keys' values, in x order
    const groups = new Map<string, SweepRow[]>();
    for (const r of done) {
      // legends name a key by its last segment: the caption names the keys in full
      const g = others.map((k) => `${k.split('.').at(-1)}=${JSON.stringify(r.values[k])}`).join(' ') || a.key;
      groups.set(g, [...(groups.get(g) ?? []), r]);
    }
    return metrics.map((m, j) => {
      const series: Series[] = [...groups].map(([label, rs], i) => ({
        label,
        color: COLORS[i % COLORS.length]!,
        points: rs
          .map((r): [number, number] => [a.at(r), r.metrics?.[m] ?? Number.NaN])
          .sort((p, q) => p[0] - q[0]),
      }));
      return chartFigure(
        files,
        `svg/line-${c.keys.indexOf(a.key) + 1}-${j + 1}.svg`,
        lineChart({
          title: `${m} against ${a.key}`,
          xLabel: a.key,
          yLabel: m,
          series,
          yScale: 'linear',
          xScale: a.scale,
          ...(a.ticks ? { xTickLabels: a.ticks } : {}),
        }),
        `${m} against ${a.key}`,
        `<span class="mono">${esc(m)}</span> against <span class="mono">${esc(a.key)}</span>` +
          (others.length
            ? `, a line per value of <span class="mono">${esc(others.join(', '))}</span>.`
            : '.'),
      );
    });
  });
  return `${parallel}\n<div class="charts">\n${lines.join('\n')}\n</div>\n`;
}

export function sweepHtml(files: Files, input: SweepReportInput): string {
  const c = input.comparison;
  const failed = c.rows.filter((r) => r.status !== 'completed');
  const baseline = c.rows.find((r) => r.name === c.baseline)!;
  const d = c.detectability;
  const body =
    `<h1>LEA sweep ${esc(input.name)}</h1>\n` +
    `<p class="muted"><span class="mono">${esc(input.suiteId)}</span> · code ${esc(input.codeVersion)} · ` +
    `${esc(input.startedAt)} – ${esc(input.finishedAt)}</p>\n` +
    facts([
      ['swept', c.keys.map((k) => `<span class="mono">${esc(k)}</span>`).join(', ')],
      ['points', `${c.rows.length} (${c.rows.length - failed.length} completed, ${failed.length} failed)`],
      ['baseline point', `<span class="mono">${esc(baseline.label)}</span>`],
      ['family', c.settings.family ? esc(c.settings.family.join(', ')) : 'every metric'],
    ]) +
    (failed.length
      ? `<div class="verdict fail">Failed points:<ul>${failed.map((r) => `<li><span class="mono">${esc(r.label)}</span>: ${esc(r.error ?? '')}</li>`).join('')}</ul></div>\n`
      : '') +
    (d ? `<p class="verdict${d.decidable ? '' : ' fail'}" id="detectable">${esc(d.text)}</p>\n` : '') +
    '<section id="points" class="first">\n<h2>Points against the baseline point</h2>\n' +
    `<p>Each cell: the point's value [its interval], then Δ = point − baseline point [interval] and the p-value ` +
    `of the paired test (corrected within the point's comparison, over the family; points are not corrected for ` +
    `one another). ★ marks the best point of a metric, only where its difference from the baseline is better ` +
    `and significant (corrected p &lt; ${c.settings.alpha}).</p>\n` +
    `<p class="muted">Tests: ${esc(c.method)}. <span class="mono">lea compare ${esc(input.suiteId)}</span> prints ` +
    'the same table.</p>\n' +
    pointsTable(c) +
    '</section>\n<section id="plots">\n<h2>Plots</h2>\n' +
    charts(files, c) +
    '</section>\n';
  return page(`LEA sweep ${input.suiteId}`, body);
}

/** Writes index.html, its charts and sweep.json (the input) into outDir; returns the paths written. */
export async function writeSweepReport(input: SweepReportInput, outDir: string): Promise<string[]> {
  const files: Files = new Map([['index.html', '']]);
  files.set('index.html', sweepHtml(files, input));
  files.set(SWEEP_JSON, JSON.stringify(input, null, 2) + '\n');
  return writeFiles(outDir, files);
}
