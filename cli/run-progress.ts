/** Live progress of a run while `lea run --wait` follows it: one line per stage, redrawn on a terminal. */
import type { Client } from '@temporalio/client';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { formatSeconds } from './progress.js';
import { runRecord } from './run-records.js';

function stageLine(s: RunRecord['stages'][number]): string {
  const width = 20;
  let bar = '';
  if (s.step !== undefined && s.totalSteps) {
    const done = Math.round((s.step / s.totalSteps) * width);
    bar = ` [${'#'.repeat(done).padEnd(width, '.')}] ${s.step}/${s.totalSteps}`;
  }
  const loss = s.loss !== undefined ? ` loss ${s.loss.toPrecision(4)}` : '';
  const secs = s.seconds !== null ? ` ${formatSeconds(s.seconds)}` : '';
  const retry = s.lastFailure ? ` attempt ${s.attempt} after: ${s.lastFailure.slice(0, 100)}` : '';
  return `  ${s.name.padEnd(16)} ${(s.status + (s.cached ? ' (cached)' : '')).padEnd(17)}${bar}${loss}${secs}${retry}`;
}

/**
 * Polls the run until `done` settles. The returned promise settles once the last poll has: the caller awaits
 * it before closing the connection, since a call still retrying on a closed channel crashes the process.
 */
export async function watchProgress(
  client: Client,
  runId: string,
  done: Promise<unknown>,
  stream = process.stderr,
): Promise<void> {
  let lastDrawn = 0;
  let lastText = '';
  let stopped = false;
  done.finally(() => void (stopped = true)).catch(() => undefined);
  while (!stopped) {
    try {
      // A deadline bounds the poll (with its gRPC retries) that may be in flight when the run ends.
      const record = await client.withDeadline(Date.now() + POLL_DEADLINE_MS, () => runRecord(client, runId));
      const lines = record.stages.map(stageLine);
      const text = lines.join('\n');
      if (stream.isTTY) {
        if (lastDrawn) stream.write(`\x1b[${lastDrawn}A`);
        stream.write(lines.map((l) => `\r\x1b[K${l}\n`).join(''));
        lastDrawn = lines.length;
      } else if (text !== lastText) {
        // Without a terminal, print only what changed (state transitions), not every step.
        const before = lastText.split('\n');
        for (const [i, l] of lines.entries())
          if (before[i]?.slice(0, 40) !== l.slice(0, 40)) stream.write(`${l}\n`);
      }
      lastText = text;
    } catch {
      // The run may be between workers or the server briefly away: keep polling.
    }
    if (!stopped) await new Promise((r) => setTimeout(r, 1000));
  }
}

const POLL_DEADLINE_MS = 10_000;
