/** The page shell (inline stylesheet for screen and print) and the HTML pieces the report pages share. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { esc } from './format.js';
import type { Chart } from './svg.js';

/** A page's files by path relative to its folder: index.html, PNG tiles, SVG charts. */
export type Files = Map<string, Uint8Array | string>;

/** Writes a page's files under outDir; returns their paths in the map's order. */
export async function writeFiles(outDir: string, files: Files): Promise<string[]> {
  for (const [path, body] of files) {
    const dest = join(outDir, path);
    await mkdir(dirname(dest), { recursive: true });
    await writeFile(dest, body);
  }
  return [...files.keys()];
}

/** Stores a chart under its path (svg/...) and returns the <figure> that shows it (caption is HTML). */
export function chartFigure(files: Files, src: string, chart: Chart, alt: string, caption: string): string {
  files.set(src, chart.svg);
  return (
    `<figure><img src="${esc(src)}" alt="${esc(alt)}" width="${chart.width}" height="${chart.height}">` +
    `<figcaption>${caption}</figcaption></figure>`
  );
}

const CSS = `
:root { color-scheme: light; --ink: #1d1d1f; --muted: #5f6368; --line: #e3e3e6;
  --fail: #fde4e2; --fail-ink: #9f1b10; --pass: #e2f3e6; --pass-ink: #1c5e2c; --note: #f4f4f6; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 1.55rem; margin: 0 0 2px; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 20px 0 8px; }
p { margin: 6px 0 12px; }
.sub { color: var(--muted); margin: 0 0 14px; }
nav { margin: 12px 0 4px; font-size: 0.9rem; }
nav a { margin-right: 14px; }
a { color: #1a56b0; }
table { border-collapse: collapse; width: 100%; font-size: 0.88rem; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--note); font-weight: 600; }
thead th { vertical-align: bottom; }
.num { text-align: right; white-space: nowrap; }
tr.fail td { background: var(--fail); }
td.fail { background: var(--fail); }
.fail-text { color: var(--fail-ink); font-weight: 600; }
.pass-text { color: var(--pass-ink); font-weight: 600; }
.muted { color: var(--muted); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.82rem;
  overflow-wrap: break-word; }
td.name { white-space: nowrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.8rem; font-weight: 600;
  background: var(--note); }
.badge.fail { background: var(--fail); color: var(--fail-ink); }
.badge.pass { background: var(--pass); color: var(--pass-ink); }
.verdict { padding: 8px 12px; border-radius: 6px; margin: 12px 0; background: var(--note); }
.verdict.fail { background: var(--fail); color: var(--fail-ink); }
.verdict.pass { background: var(--pass); color: var(--pass-ink); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 2px 24px;
  margin: 0 0 16px; font-size: 0.9rem; }
.facts div { display: flex; gap: 8px; border-bottom: 1px solid var(--line); padding: 3px 0; }
.facts dt { color: var(--muted); min-width: 7.5em; }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.grid { display: grid; gap: 4px 4px; align-items: center; margin: 8px 0 16px; }
.grid .head { font-size: 0.78rem; color: var(--muted); text-align: center; align-self: end; }
.grid .group { font-size: 0.82rem; font-weight: 600; text-align: center; border-bottom: 2px solid var(--line); }
.grid .item { font-size: 0.78rem; color: var(--muted); text-align: right; padding-right: 4px; }
.grid img { display: block; width: 100%; height: auto; }
img { max-width: 100%; height: auto; }
img.pixelated { image-rendering: pixelated; }
figure { margin: 0 0 16px; break-inside: avoid; }
figcaption { font-size: 0.84rem; color: var(--muted); margin-top: 2px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px 20px; }
.charts img { width: 100%; }
.scroll { overflow-x: auto; }
td.best { background: var(--pass); }
@media print {
  @page { size: A4; margin: 14mm 12mm; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  section { break-before: page; }
  section.first { break-before: auto; }
  h2 { margin-top: 0; }
  h2, h3 { break-after: avoid; }
  figure, tr, .facts div, .grid img, .verdict { break-inside: avoid; }
  thead { display: table-header-group; }
  a { color: inherit; text-decoration: none; }
  /* one chart per line at its natural size: two side by side would shrink their labels below legibility */
  .charts { grid-template-columns: 1fr; }
  .charts img { width: auto; }
}
`;

export function page(title: string, body: string): string {
  return (
    `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>${esc(title)}</title>\n` +
    `<style>${CSS}</style>\n</head>\n<body>\n<main>\n${body}</main>\n</body>\n</html>\n`
  );
}

/** A slash-separated key with line-break opportunities after its slashes. */
export function keyHtml(key: string): string {
  return esc(key).replace(/\//g, '/<wbr>');
}

/** A table of rows (HTML) under a header row (HTML), or the note `empty` when there are no rows. */
export function table(cls: string, head: string, rows: string[], empty: string): string {
  if (rows.length === 0) return `<p class="muted">${esc(empty)}</p>\n`;
  return `<table class="${cls}">\n<thead><tr>${head}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody>\n</table>\n`;
}

/** A definition list laid out as a two-column grid of label/value pairs (values are already HTML). */
export function facts(pairs: [string, string][]): string {
  const rows = pairs.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${v}</dd></div>`).join('\n');
  return `<dl class="facts">\n${rows}\n</dl>\n`;
}

export interface Tile {
  src: string;
  alt: string;
  width: number;
  height: number;
  pixelated: boolean;
}

export interface GridGroup {
  /** A heading over the group's columns, or '' for none. */
  heading: string;
  columns: { label: string; tiles: (Tile | null)[] }[];
}

const TILE_CSS_PX = 128;
const GROUP_GAP_PX = 10;

/**
 * The reconstruction grid: one row per test item, groups of image columns (stimulus; the samples of a run)
 * separated by a gap, so each stimulus sits beside its decoded samples. A null tile leaves its cell empty.
 */
export function imageGrid(groups: GridGroup[], rowLabels: string[]): string {
  const template = ['3.2em']
    .concat(
      groups
        .map((g) => `repeat(${g.columns.length}, minmax(0, ${TILE_CSS_PX}px))`)
        .join(` ${GROUP_GAP_PX}px `),
    )
    .join(' ');
  const cells: string[] = [];
  const spacer = '<span></span>';
  const eachGroup = (f: (g: GridGroup) => string) => groups.map(f).join(spacer);
  if (groups.some((g) => g.heading)) {
    cells.push(
      spacer +
        eachGroup(
          (g) =>
            `<div${g.heading ? ' class="group"' : ''} style="grid-column: span ${g.columns.length}">${esc(g.heading)}</div>`,
        ),
    );
  }
  cells.push(
    spacer + eachGroup((g) => g.columns.map((col) => `<div class="head">${esc(col.label)}</div>`).join('')),
  );
  rowLabels.forEach((label, r) => {
    const tiles = eachGroup((g) =>
      g.columns
        .map((col) => {
          const t = col.tiles[r];
          if (!t) return spacer;
          const cls = t.pixelated ? ' class="pixelated"' : '';
          return `<img src="${esc(t.src)}" alt="${esc(t.alt)}" width="${t.width}" height="${t.height}"${cls}>`;
        })
        .join(''),
    );
    cells.push(`<span class="item">${esc(label)}</span>${tiles}`);
  });
  return `<div class="grid" style="grid-template-columns: ${template}">\n${cells.join('\n')}\n</div>\n`;
}
