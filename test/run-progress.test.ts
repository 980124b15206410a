/** What `lea run --wait` and `lea status` print while a run is under way (no servers: records are made up). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { etaText, watchProgress } from '../cli/run-progress.js';
import { formatRecord } from '../cli/run-records.js';
import { noWorkerText, workerCommand } from '../cli/task-queues.js';
import type { RunRecord } from '../lib/pipeline/run-record.js';

const record = (stages: RunRecord['stages']): RunRecord => ({
  runId: 'r',
  config: 'c.yaml',
  status: 'running',
  startedAt: '2026-11-30T00:00:00.000Z',
  finishedAt: null,
  stages,
  metrics: {},
  verdict: null,
});

test('without a terminal, progress lines come through a whole stage at a steady rate, each with an ETA', async () => {
  const total = 400;
  const stageMs = 2400;
  const lineEveryMs = 200;
  const t0 = Date.now();
  const printed: { at: number; line: string }[] = [];
  const stream = {
    isTTY: false,
    write: (text: string) => {
      for (const line of text.split('\n').filter(Boolean)) printed.push({ at: Date.now() - t0, line });
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  const read = async () => {
    const step = Math.min(total, Math.floor(((Date.now() - t0) / stageMs) * total));
    return record([
      { name: 'prepare', status: 'completed', cached: false, seconds: 1 },
      step < total
        ? {
            name: 'fmri-ae',
            status: 'running',
            cached: false,
            seconds: null,
            step,
            totalSteps: total,
            loss: 1,
          }
        : { name: 'fmri-ae', status: 'completed', cached: false, seconds: 2.4 },
    ]);
  };
  const done = new Promise((r) => setTimeout(r, stageMs + 300));
  await watchProgress(undefined, 'r', done, { stream, read, pollMs: 20, lineEveryMs });

  const running = printed.filter((p) => /fmri-ae\s+running/.test(p.line));
  assert.ok(
    running.length >= stageMs / lineEveryMs / 2,
    `${running.length} lines:\n${printed.map((p) => p.line).join('\n')}`,
  );
  for (const p of running) assert.match(p.line, / \d+\/400 ETA (\d+s|\?)/, p.line);
  for (const p of running.slice(1)) assert.match(p.line, / ETA \d+s/, p.line);
  // Lines keep coming to the end of the stage (not only while the first characters of the bar change).
  const steps = running.map((p) => Number(/ (\d+)\/400/.exec(p.line)![1]));
  assert.ok(Math.max(...steps) >= 0.8 * total, `last step printed: ${Math.max(...steps)}`);
  const gaps = running.slice(1).map((p, i) => p.at - running[i]!.at);
  assert.ok(Math.max(...gaps) < 5 * lineEveryMs, `gaps ${gaps.join(', ')} ms`);
  assert.equal(printed.filter((p) => /prepare/.test(p.line)).length, 1, 'an unchanged stage prints once');
  assert.equal(printed.filter((p) => /fmri-ae\s+completed/.test(p.line)).length, 1);
});

test('the ETA is the remaining steps at the rate seen so far', () => {
  const s = {
    name: 'x',
    status: 'running',
    cached: false,
    seconds: null,
    step: 100,
    totalSteps: 300,
  } as const;
  assert.equal(etaText(s, { at: 0, step: 0 }, 10_000), ' ETA 20s');
  assert.equal(etaText(s, { at: 0, step: 100 }, 10_000), ' ETA ?');
  assert.equal(etaText({ ...s, step: 300 }, { at: 0, step: 0 }, 10_000), ' ETA 0s');
});

test('status names the queue nobody polls with the command to start a worker, and a stale heartbeat', () => {
  assert.equal(workerCommand('lea-gpu'), 'npx lea worker --queue gpu');
  assert.equal(workerCommand('res-ab12-cpu'), 'LEA_TASK_QUEUE_PREFIX=res-ab12 npx lea worker --queue cpu');
  assert.equal(noWorkerText('other'), "no worker polls 'other'");
  const text = formatRecord({
    ...record([
      {
        name: 'maskgit',
        status: 'queued',
        cached: false,
        seconds: null,
        taskQueue: 'lea-gpu',
        startWorker: 'npx lea worker --queue gpu',
      },
      {
        name: 'fmri-ae',
        status: 'stale',
        cached: false,
        seconds: null,
        step: 191,
        totalSteps: 500,
        heartbeatAgeSeconds: 24,
      },
    ]),
    noWorker: { taskQueue: 'lea-cpu', startWorker: 'npx lea worker --queue cpu' },
  });
  assert.match(
    text,
    /no worker polls 'lea-cpu', so nothing advances this run: start one with `npx lea worker --queue cpu`/,
  );
  assert.match(
    text,
    /maskgit +queued\n +no worker polls 'lea-gpu': start one with `npx lea worker --queue gpu`/,
  );
  assert.match(text, /fmri-ae +stale step 191\/500\n +last heartbeat 24s ago/);
});
