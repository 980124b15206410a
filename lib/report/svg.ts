/**
 * Hand-written SVG charts for the reports: line charts (loss curves, voxel patterns, a sweep's metric against a
 * swept key), bar charts (per-ROI correlation) and parallel coordinates (a sweep's points). Every chart carries its own width and height, so an <img> of it has a natural size, and only
 * generic font families, so it renders the same offline.
 */
import { esc, fmtNumber } from './format.js';

export interface Series {
  label: string;
  color: string;
  /** [x, y] pairs in x order; non-finite y values break the line. */
  points: [number, number][];
}

/** A shaded x range with a label at the top of the plot (ROIs along the voxel axis). */
export interface Band {
  from: number;
  to: number;
  label: string;
}

export type YScale = 'linear' | 'log';

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  yScale: YScale;
  /** Linear by default; log for a key swept over decades (a ridge's alpha). */
  xScale?: YScale;
  /** Text for x ticks at these values instead of the numbers (a swept key's non-numeric values). */
  xTickLabels?: Map<number, string>;
  bands?: Band[];
}

export interface Bar {
  label: string;
  /** A second, smaller line under the label (e.g. the ROI's voxel count). */
  sublabel?: string;
  /** NaN draws no bar and says "n/a". */
  value: number;
}

/** An SVG document and its size in pixels (for the <img> that shows it). */
export interface Chart {
  svg: string;
  width: number;
  height: number;
}

export interface BarChartSpec {
  title: string;
  yLabel: string;
  bars: Bar[];
  color: string;
}

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const AXIS = '#444';
const GRID = '#e4e4e4';

/** Rounds a coordinate to 0.1 px: plenty for the eye, and keeps long polylines small. */
function c(v: number): string {
  return String(Math.round(v * 10) / 10);
}

/** Log scale when every value is positive and they span at least a decade (a loss falling by orders). */
export function chooseYScale(values: number[]): YScale {
  const finite = values.filter(Number.isFinite);
  const [lo, hi] = extent(finite);
  if (finite.length === 0 || lo <= 0) return 'linear';
  return hi / lo >= 10 ? 'log' : 'linear';
}

interface Axis {
  min: number;
  max: number;
  ticks: number[];
  /** Maps a data value to [0, 1] along the axis. */
  unit: (v: number) => number;
}

/**
 * ~`count` ticks at 1, 2 or 5 × 10^k. A padded axis widens its domain to the outer ticks (value axes); a
 * tight one keeps the data's range and only the ticks inside it (the step or voxel axis).
 */
function linearAxis(lo: number, hi: number, count = 5, tight = false): Axis {
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const first = Math.ceil(lo / step - 1e-9);
  const last = Math.floor(hi / step + 1e-9);
  const min = tight ? lo : Math.floor(lo / step + 1e-9) * step;
  const max = tight ? hi : Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  // multiply instead of accumulating, so tick values carry no summed rounding error
  for (let i = tight ? first : Math.round(min / step); i <= (tight ? last : Math.round(max / step)); i++) {
    ticks.push(Number((i * step).toPrecision(12)));
  }
  return { min, max, ticks, unit: (v) => (v - min) / (max - min) };
}

/** Decade ticks, plus 2× and 5× ticks when the data span under two decades (more would crowd the axis). */
function logAxis(lo: number, hi: number): Axis {
  const first = Math.floor(Math.log10(lo));
  const last = Math.ceil(Math.log10(hi));
  const mults = Math.log10(hi / lo) < 2 ? [1, 2, 5] : [1];
  const candidates: number[] = [];
  for (let e = first; e <= last; e++)
    for (const m of mults) candidates.push(Number((m * 10 ** e).toPrecision(12)));
  // the domain runs from the last candidate at or below lo to the first at or above hi
  const min = candidates.filter((t) => t <= lo).at(-1) ?? lo;
  const max = candidates.find((t) => t >= hi) ?? hi;
  const ticks = candidates.filter((t) => t >= min && t <= max);
  const lmin = Math.log10(min);
  const lmax = Math.log10(max);
  return { min, max, ticks, unit: (v) => (Math.log10(v) - lmin) / (lmax - lmin) };
}

/**
 * Keeps at most ~4 points per pixel column (first, min, max, last of each column, in x order), so a curve
 * of 100k steps stays a small file and its spikes stay visible.
 */
function decimate(
  points: [number, number][],
  toPx: (x: number) => number,
  columns: number,
): [number, number][] {
  if (points.length <= columns * 2) return points;
  const out: [number, number][] = [];
  let bucket: [number, number][] = [];
  let col = Number.NaN;
  const flush = () => {
    if (bucket.length === 0) return;
    let lo = bucket[0]!;
    let hi = bucket[0]!;
    for (const p of bucket) {
      if (p[1] < lo[1]) lo = p;
      if (p[1] > hi[1]) hi = p;
    }
    const keep = new Set([bucket[0]!, lo, hi, bucket.at(-1)!]);
    out.push(...bucket.filter((p) => keep.has(p)));
    bucket = [];
  };
  for (const p of points) {
    const pc = Math.floor(toPx(p[0]));
    if (pc !== col) flush();
    col = pc;
    bucket.push(p);
  }
  flush();
  return out;
}

/** Min and max without spreading (a spread of a 100k-point curve overflows the call stack). */
function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function svgOpen(width: number, height: number, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `role="img" aria-label="${esc(title)}" ${FONT} font-size="12">\n<title>${esc(title)}</title>\n` +
    `<rect width="${width}" height="${height}" fill="#fff"/>\n`
  );
}

export function lineChart(spec: LineChartSpec): Chart {
  const width = 560;
  const height = 250;
  const bands = spec.bands ?? [];
  const m = { l: 64, r: 24, t: bands.length ? 44 : 30, b: 42 }; // r: room for half the last x label
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const usable = (y: number) => Number.isFinite(y) && (spec.yScale === 'linear' || y > 0);
  const all = spec.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]).concat(bands.flatMap((b) => [b.from, b.to]));
  const ys = all.map((p) => p[1]).filter(usable);

  let out = svgOpen(width, height, spec.title);
  if (xs.length === 0 || ys.length === 0) {
    out += `<text x="${width / 2}" y="${height / 2}" text-anchor="middle" fill="${AXIS}">no data recorded</text>\n`;
    return { svg: out + '</svg>\n', width, height };
  }
  const xa = spec.xScale === 'log' ? logAxis(...extent(xs)) : linearAxis(...extent(xs), 6, true);
  const ya = spec.yScale === 'log' ? logAxis(...extent(ys)) : linearAxis(...extent(ys));
  const px = (x: number) => m.l + xa.unit(x) * pw;
  const py = (y: number) => m.t + (1 - ya.unit(y)) * ph;

  bands.forEach((b, i) => {
    const x0 = px(b.from);
    const x1 = px(b.to);
    if (i % 2 === 0)
      out += `<rect x="${c(x0)}" y="${m.t}" width="${c(x1 - x0)}" height="${ph}" fill="#f2f2f7"/>\n`;
    out += `<text x="${c((x0 + x1) / 2)}" y="${m.t - 5}" text-anchor="middle" fill="${AXIS}">${esc(b.label)}</text>\n`;
  });
  for (const t of ya.ticks) {
    out += `<line x1="${m.l}" x2="${m.l + pw}" y1="${c(py(t))}" y2="${c(py(t))}" stroke="${GRID}"/>\n`;
    out += `<text x="${m.l - 6}" y="${c(py(t) + 4)}" text-anchor="end" fill="${AXIS}">${esc(fmtNumber(t))}</text>\n`;
  }
  for (const t of xa.ticks) {
    out += `<line x1="${c(px(t))}" x2="${c(px(t))}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="${AXIS}"/>\n`;
    const label = spec.xTickLabels ? (spec.xTickLabels.get(t) ?? '') : fmtNumber(t);
    out += `<text x="${c(px(t))}" y="${m.t + ph + 16}" text-anchor="middle" fill="${AXIS}">${esc(label)}</text>\n`;
  }
  out += `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="${AXIS}"/>\n`;
  out += `<text x="${m.l + pw / 2}" y="${height - 6}" text-anchor="middle" fill="#222">${esc(spec.xLabel)}</text>\n`;
  const yLabel = spec.yScale === 'log' ? `${spec.yLabel} (log scale)` : spec.yLabel;
  out += `<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${esc(yLabel)}</text>\n`;

  let legendX = m.l;
  for (const s of spec.series) {
    out += `<line x1="${legendX}" x2="${legendX + 18}" y1="10" y2="10" stroke="${s.color}" stroke-width="2"/>\n`;
    out += `<text x="${legendX + 22}" y="14" fill="#222">${esc(s.label)}</text>\n`;
    legendX += 40 + s.label.length * 7;
  }
  // thinner lines once there is more than one point per pixel column, so overlaid series stay apart
  const stroke = Math.max(...spec.series.map((s) => s.points.length)) > pw ? 0.8 : 1.5;
  for (const s of spec.series) {
    // non-finite (or, on a log axis, non-positive) values split the line instead of being drawn at an edge
    const runs: [number, number][][] = [[]];
    for (const p of s.points) {
      if (usable(p[1])) runs.at(-1)!.push(p);
      else if (runs.at(-1)!.length) runs.push([]);
    }
    for (const run of runs.filter((r) => r.length)) {
      const pts = decimate(run, px, pw);
      if (pts.length === 1) {
        out += `<circle cx="${c(px(pts[0]![0]))}" cy="${c(py(pts[0]![1]))}" r="2" fill="${s.color}"/>\n`;
      } else {
        const coords = pts.map(([x, y]) => `${c(px(x))},${c(py(y))}`).join(' ');
        out += `<polyline points="${coords}" fill="none" stroke="${s.color}" stroke-width="${stroke}" stroke-opacity="0.85" stroke-linejoin="round"/>\n`;
      }
    }
  }
  return { svg: out + '</svg>\n', width, height };
}

export function barChart(spec: BarChartSpec): Chart {
  const slot = 76;
  const m = { l: 64, r: 14, t: 22, b: 44 };
  const width = Math.max(360, m.l + m.r + slot * spec.bars.length);
  const height = 250;
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const [lo, hi] = extent(spec.bars.map((b) => b.value).filter(Number.isFinite));
  const ya = linearAxis(Math.min(0, lo), Math.max(0, hi));
  const py = (y: number) => m.t + (1 - ya.unit(y)) * ph;
  const step = pw / Math.max(1, spec.bars.length);

  let out = svgOpen(width, height, spec.title);
  for (const t of ya.ticks) {
    out += `<line x1="${m.l}" x2="${m.l + pw}" y1="${c(py(t))}" y2="${c(py(t))}" stroke="${GRID}"/>\n`;
    out += `<text x="${m.l - 6}" y="${c(py(t) + 4)}" text-anchor="end" fill="${AXIS}">${esc(fmtNumber(t))}</text>\n`;
  }
  spec.bars.forEach((b, i) => {
    const cx = m.l + step * (i + 0.5);
    const bw = Math.min(44, step * 0.6);
    if (Number.isFinite(b.value)) {
      const y0 = py(0);
      const y1 = py(b.value);
      out += `<rect x="${c(cx - bw / 2)}" y="${c(Math.min(y0, y1))}" width="${c(bw)}" height="${c(Math.max(0.5, Math.abs(y1 - y0)))}" fill="${spec.color}"/>\n`;
      const ly = b.value >= 0 ? y1 - 4 : y1 + 13;
      out += `<text x="${c(cx)}" y="${c(ly)}" text-anchor="middle" fill="#222">${esc(fmtNumber(b.value))}</text>\n`;
    } else {
      out += `<text x="${c(cx)}" y="${c(py(0) - 4)}" text-anchor="middle" fill="${AXIS}">n/a</text>\n`;
    }
    out += `<text x="${c(cx)}" y="${m.t + ph + 16}" text-anchor="middle" fill="#222">${esc(b.label)}</text>\n`;
    if (b.sublabel) {
      out += `<text x="${c(cx)}" y="${m.t + ph + 30}" text-anchor="middle" fill="${AXIS}" font-size="10">${esc(b.sublabel)}</text>\n`;
    }
  });
  out += `<line x1="${m.l}" x2="${m.l + pw}" y1="${c(py(0))}" y2="${c(py(0))}" stroke="${AXIS}"/>\n`;
  out += `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="${AXIS}"/>\n`;
  out += `<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#222">${esc(spec.yLabel)}</text>\n`;
  return { svg: out + '</svg>\n', width, height };
}

/** One vertical axis of a parallel-coordinates chart: a value per line (null: the line skips this axis). */
export interface ParallelAxis {
  label: string;
  values: (number | null)[];
  scale: YScale;
  /** Text for ticks at these values instead of the numbers (non-numeric swept values by their index). */
  tickLabels?: Map<number, string>;
}

export interface ParallelChartSpec {
  title: string;
  axes: ParallelAxis[];
  /** One per value index of the axes. */
  lines: { label: string; color: string; width: number }[];
}

/** Parallel coordinates: an axis per swept key and metric, a polyline per point across them. */
export function parallelChart(spec: ParallelChartSpec): Chart {
  const slot = 150;
  const m = { l: 80, r: 80, t: 52, b: 30 };
  const width = Math.max(420, m.l + m.r + slot * (spec.axes.length - 1));
  const height = 320;
  const ph = height - m.t - m.b;
  const step = spec.axes.length > 1 ? (width - m.l - m.r) / (spec.axes.length - 1) : 0;
  let out = svgOpen(width, height, spec.title);
  const scaled = spec.axes.map((a, i) => {
    const finite = a.values.filter((v): v is number => v !== null && Number.isFinite(v));
    const axis = finite.length
      ? a.scale === 'log'
        ? logAxis(...extent(finite))
        : linearAxis(...extent(finite), 4, a.tickLabels !== undefined)
      : undefined;
    const x = m.l + step * i;
    return { ...a, axis, x, y: (v: number) => m.t + (1 - axis!.unit(v)) * ph };
  });
  spec.lines.forEach((line, j) => {
    const runs: string[][] = [[]];
    for (const a of scaled) {
      const v = a.values[j];
      if (a.axis && v !== null && v !== undefined && Number.isFinite(v))
        runs.at(-1)!.push(`${c(a.x)},${c(a.y(v))}`);
      else if (runs.at(-1)!.length) runs.push([]);
    }
    for (const r of runs.filter((r) => r.length > 1))
      out += `<polyline points="${r.join(' ')}" fill="none" stroke="${line.color}" stroke-width="${line.width}" stroke-opacity="0.85"><title>${esc(line.label)}</title></polyline>\n`;
  });
  scaled.forEach((a, i) => {
    out += `<line x1="${c(a.x)}" x2="${c(a.x)}" y1="${m.t}" y2="${m.t + ph}" stroke="${AXIS}"/>\n`;
    // labels alternate between two rows, so long metric names beside each other do not overlap
    out += `<text x="${c(a.x)}" y="${m.t - (i % 2 ? 10 : 26)}" text-anchor="middle" fill="#222">${esc(a.label)}</text>\n`;
    for (const t of a.axis?.ticks ?? []) {
      const label = a.tickLabels ? a.tickLabels.get(t) : fmtNumber(t);
      if (label === undefined) continue;
      out += `<line x1="${c(a.x - 3)}" x2="${c(a.x)}" y1="${c(a.y(t))}" y2="${c(a.y(t))}" stroke="${AXIS}"/>\n`;
      out += `<text x="${c(a.x - 5)}" y="${c(a.y(t) + 4)}" text-anchor="end" fill="${AXIS}" font-size="10">${esc(label)}</text>\n`;
    }
  });
  return { svg: out + '</svg>\n', width, height };
}
