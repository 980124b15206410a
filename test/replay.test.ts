/** Replays recorded histories through the current workflow code: a non-deterministic change fails here. */
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { workflowsPath } from '../workers/worker.js';

const dir = new URL('./histories/', import.meta.url);

test('every recorded history replays without a non-determinism error', async () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 2, 'histories are recorded (scripts/record-histories.ts)');
  const histories = files.map((f) => ({
    // the id it was recorded under (scripts/record-histories.ts): a suite derives its runs' ids from it
    workflowId: f.replace(/\.json$/, ''),
    history: historyFromJSON(JSON.parse(readFileSync(new URL(f, dir), 'utf8'))),
  }));
  const failures: string[] = [];
  for await (const r of Worker.runReplayHistories({ workflowsPath }, histories)) {
    if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
  }
  assert.deepEqual(failures, []);
});
