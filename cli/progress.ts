/** A one-line progress bar on stderr (redrawn in place on a terminal, a line every few seconds otherwise). */
const MB = 2 ** 20;

export interface ProgressBar {
  update(label: string, done: number, total?: number, extra?: string): void;
  done(): void;
}

export function progressBar(stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  const started = Date.now();
  let lastDraw = 0;
  let drawn = false;
  return {
    update(label, done, total, extra = '') {
      const now = Date.now();
      const interval = stream.isTTY ? 100 : 5000;
      if (now - lastDraw < interval && done !== total) return;
      lastDraw = now;
      const rate = done / Math.max((now - started) / 1000, 1e-3);
      const pct = total ? done / total : undefined;
      const width = 24;
      const bar = pct === undefined ? '' : `[${'#'.repeat(Math.round(pct * width)).padEnd(width, '.')}] `;
      const eta = total && rate > 0 ? ` ETA ${formatSeconds((total - done) / rate)}` : '';
      const size = total
        ? `${(done / MB).toFixed(1)}/${(total / MB).toFixed(1)} MB`
        : `${(done / MB).toFixed(1)} MB`;
      const line = `${label} ${bar}${size} ${(rate / MB).toFixed(1)} MB/s${eta}${extra}`;
      if (stream.isTTY) {
        stream.write(`\r\x1b[K${line}`);
        drawn = true;
      } else stream.write(`${line}\n`);
    },
    done() {
      if (drawn) stream.write('\n');
    },
  };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}
