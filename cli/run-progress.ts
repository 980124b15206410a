/**
 * Live progress of a run while `lea run --wait` follows it: one line per stage, redrawn on a terminal; without
 * one, a line when a stage changes state and one every few seconds per stage that makes progress.
 */
import type { Client } from '@temporalio/client';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { formatSeconds } from './progress.js';
import { runRecord } from './run-records.js';

type StageRow = RunRecord['stages'][number];

/** Where a stage's step rate is measured from: the first time this watcher saw it at a step. */
interface RateStart {
  at: number;
  step: number;
}

/** "ETA 3m05s" from the steps made since `start`; "ETA ?" until there is a rate. */
export function etaText(s: StageRow, start: RateStart | undefined, now: number): string {
  if (s.step === undefined || !s.totalSteps) return '';
  if (s.step >= s.totalSteps) return ' ETA 0s';
  const rate = start && now > start.at ? (s.step - start.step) / ((now - start.at) / 1000) : 0;
  return ` ETA ${rate > 0 ? formatSeconds((s.totalSteps - s.step) / rate) : '?'}`;
}

export function stageLine(s: StageRow, eta = ''): string {
  const width = 20;
  let bar = '';
  if (s.step !== undefined && s.totalSteps) {
    const done = Math.round((Math.min(s.step, s.totalSteps) / s.totalSteps) * width);
    bar = ` [${'#'.repeat(done).padEnd(width, '.')}] ${s.step}/${s.totalSteps}`;
  }
  const loss = s.loss !== undefined ? ` loss ${s.loss.toPrecision(4)}` : '';
  const secs = s.seconds !== null ? ` ${formatSeconds(s.seconds)}` : '';
  const retry = s.lastFailure ? ` attempt ${s.attempt} after: ${s.lastFailure.slice(0, 100)}` : '';
  const queue = s.startWorker
    ? ` no worker polls '${s.taskQueue}': start one with \`${s.startWorker}\``
    : s.taskQueue
      ? ` waiting for a worker of '${s.taskQueue}'`
      : '';
  const stale = s.status === 'stale' ? ` last heartbeat ${s.heartbeatAgeSeconds}s ago` : '';
  const waiting = s.waitingFor ? ` waiting for ${s.waitingFor === 's3' ? 'S3' : s.waitingFor}` : '';
  return `  ${s.name.padEnd(16)} ${s.status.padEnd(17)}${bar}${eta}${loss}${secs}${retry}${queue}${stale}${waiting}`;
}

export interface WatchOptions {
  stream?: NodeJS.WriteStream;
  /** How the record is read (a test's stand-in); by default runRecord(client, runId). */
  read?: () => Promise<RunRecord>;
  /** Between two reads of the record. */
  pollMs?: number;
  /** Without a terminal: at most one line per stage this often, unless its state changes. */
  lineEveryMs?: number;
}

/** A stage whose line repeats without a terminal: it is under way. */
const UNDER_WAY = new Set<string>(['running', 'stale', 'retrying']);

/**
 * Polls the run until `done` settles. The returned promise settles once the last poll has: the caller awaits
 * it before closing the connection, since a call still retrying on a closed channel crashes the process.
 */
export async function watchProgress(
  client: Client | undefined,
  runId: string,
  done: Promise<unknown>,
  opts: WatchOptions = {},
): Promise<void> {
  const stream = opts.stream ?? process.stderr;
  const pollMs = opts.pollMs ?? 1000;
  const lineEveryMs = opts.lineEveryMs ?? 5000;
  const read =
    opts.read ??
    // A deadline bounds the poll (with its gRPC retries) that may be in flight when the run ends.
    (() => client!.withDeadline(Date.now() + POLL_DEADLINE_MS, () => runRecord(client!, runId)));
  let lastDrawn = 0;
  let stopped = false;
  const rates = new Map<string, RateStart>();
  /** Without a terminal: per stage, the state and the time of its last printed line. */
  const printed = new Map<string, { state: string; at: number; line: string }>();
  done.finally(() => void (stopped = true)).catch(() => undefined);
  while (!stopped) {
    try {
      const record = await read();
      const now = Date.now();
      const lines = record.stages.map((s) => {
        const start = rates.get(s.name);
        // (Re)start the rate at the first step seen, and after a step backwards (a resume from a checkpoint).
        if (s.step !== undefined && (!start || s.step < start.step))
          rates.set(s.name, { at: now, step: s.step });
        return stageLine(s, UNDER_WAY.has(s.status) ? etaText(s, rates.get(s.name), now) : '');
      });
      if (stream.isTTY) {
        if (lastDrawn) stream.write(`\x1b[${lastDrawn}A`);
        stream.write(lines.map((l) => `\r\x1b[K${l}\n`).join(''));
        lastDrawn = lines.length;
      } else {
        for (const [i, s] of record.stages.entries()) {
          const line = lines[i]!;
          const state = `${s.status} ${s.cached}`;
          const last = printed.get(s.name);
          const changed = last?.state !== state;
          const due = UNDER_WAY.has(s.status) && now - (last?.at ?? 0) >= lineEveryMs && last?.line !== line;
          if (changed || due) {
            stream.write(`${line}\n`);
            printed.set(s.name, { state, at: now, line });
          }
        }
      }
    } catch {
      // The run may be between workers or the server briefly away: keep polling.
    }
    if (!stopped) await new Promise((r) => setTimeout(r, pollMs));
  }
}

const POLL_DEADLINE_MS = 10_000;
