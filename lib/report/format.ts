/** Text helpers shared by the HTML and SVG writers: escaping and the one way numbers and times are shown. */

/** Escapes text for HTML and XML content and attribute values. */
export function esc(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** 4 significant digits without trailing zeros; exponent form outside [1e-3, 1e5). */
export function fmtNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  let text: string;
  if (a < 1e-3 || a >= 1e5)
    text = v
      .toExponential(3)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  else if (a >= 1e3)
    text = v.toFixed(0); // toPrecision(4) would switch to exponent form from 1e4
  else
    text = v
      .toPrecision(4)
      .replace(/(\.\d*?)0+$/, '$1')
      .replace(/\.$/, '');
  return text.replace(/-/g, '−'); // a typographic minus, as in print
}

/** An interval to follow a value, " [lo, hi]", or nothing when there is none. */
export function fmtIntervalAfter(b?: [number, number]): string {
  return b ? ` [${fmtNumber(b[0])}, ${fmtNumber(b[1])}]` : '';
}

/** A signed difference, e.g. "+0.012" or "−3.1". */
export function fmtDelta(v: number): string {
  return v > 0 ? `+${fmtNumber(v)}` : fmtNumber(v);
}

/** A duration: "0.42 s", "12.3 s", "3 min 20 s", "1 h 02 min". */
export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '–';
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.round(s);
  if (total < 3600) return `${Math.floor(total / 60)} min ${String(total % 60).padStart(2, '0')} s`;
  const minutes = Math.round(total / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A plain-text table for a terminal: columns padded to their widest cell, two spaces apart. */
export function textTable(heads: string[], body: string[][]): string {
  const widths = heads.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(heads), ...body.map(line)].join('\n');
}
