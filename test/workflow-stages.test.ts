/** The reproduction workflow's machinery (DAG, cache, force, progress, search attributes) on the data stages. */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { RunRecord, StagePlan } from '../lib/pipeline/run-record.js';
import type { ReproductionInput, ReproductionResult, RunProgress } from '../workflows/reproduction.js';
import { runRecord } from '../cli/run-records.js';
import { testWorkers, type TestWorkers } from './helpers/worker.js';

let w: TestWorkers;
before(async () => (w = await testWorkers()));
after(() => w.close());

const seed = randomInt(1, 2 ** 31);
const stage = (s: Pick<StagePlan, 'name' | 'impl' | 'needs' | 'config'>): StagePlan => ({
  queue: 'cpu',
  timeoutMinutes: 5,
  heartbeatSeconds: 60,
  maxAttempts: 2,
  ...s,
});
const plan: StagePlan[] = [
  stage({ name: 'synth', impl: 'synth', needs: {}, config: { format: 'god', scale: 'tiny', seed } }),
  stage({
    name: 'prepare',
    impl: 'prepare',
    needs: { raw: 'synth' },
    config: { dataset: 'god', subject: 'sbj_1' },
  }),
];

function input(force: string[] = [], stages = plan): ReproductionInput {
  return {
    configName: `wf-test-${seed}`,
    configFile: 'test',
    dataset: 'god',
    subject: 'sbj_1',
    codeVersion: 'test',
    taskQueues: w.queues,
    plan: stages,
    force,
    metricsStage: 'prepare',
    skipReport: true,
  };
}

async function run(force: string[] = []): Promise<ReproductionResult> {
  return w.run(async () => {
    const handle = await w.client.workflow.start('reproductionWorkflow', {
      workflowId: `wf-test-${seed}-${randomInt(1e9)}`,
      taskQueue: w.queues.cpu,
      args: [input(force)],
    });
    const result = (await handle.result()) as ReproductionResult;
    const progress = await handle.query<RunProgress>('progress');
    assert.deepEqual(
      progress.stages.map((s) => s.status),
      result.stages.map((s) => s.status),
    );
    return result;
  });
}

test('stages run in order, then come from the cache; --force recomputes a stage and what follows', async () => {
  const first = await run();
  assert.deepEqual(
    first.stages.map((s) => [s.name, s.status]),
    [
      ['synth', 'completed'],
      ['prepare', 'completed'],
    ],
  );
  assert.equal(first.metrics.train, 600, 'the tiny GOD world has 600 training pairs');
  assert.ok(first.stages[1]!.output?.key.startsWith('cache/prepare/'));

  const second = await run();
  assert.deepEqual(
    second.stages.map((s) => s.status),
    ['cached', 'cached'],
  );
  assert.deepEqual(
    second.stages.map((s) => s.output?.key),
    first.stages.map((s) => s.output?.key),
  );

  const forced = await run(['prepare']);
  assert.deepEqual(
    forced.stages.map((s) => s.status),
    ['cached', 'completed'],
  );
});

test('runs are findable by their search attributes', async () => {
  const found: string[] = [];
  for await (const wf of w.client.workflow.list({ query: `LeaConfig = 'wf-test-${seed}'` }))
    found.push(wf.workflowId);
  assert.ok(found.length >= 3, `found ${found.length}`);
});

test('a stage failing on bad input fails the run at once; its record says which stage and why', async () => {
  const [synth, prepare] = plan as [StagePlan, StagePlan];
  const badSubject = { ...prepare, config: { dataset: 'god', subject: 'subject-one' } };
  const runId = `wf-test-${seed}-bad-${randomInt(1e9)}`;
  const started = Date.now();
  await w.run(async () => {
    const handle = await w.client.workflow.start('reproductionWorkflow', {
      workflowId: runId,
      taskQueue: w.queues.cpu,
      args: [input([], [synth, badSubject])],
    });
    await assert.rejects(handle.result());
  });
  const record = await runRecord(w.client, runId);
  assert.equal(record.status, 'failed');
  const failed = record.stages.find((s) => s.name === 'prepare');
  assert.equal(failed?.status, 'failed');
  assert.match(failed?.error ?? '', /GOD subject must look like sbj_N, got 'subject-one'/);
  assert.match(record.error ?? '', /prepare|Activity task failed.*subject-one/);
  assert.ok(Date.now() - started < 30_000, 'a BadInputError is not retried');
});

test('a stage whose queue has no worker shows as queued, not running, with the queue and the command', async () => {
  const [synth] = plan as [StagePlan];
  const onGpu: StagePlan = {
    ...synth,
    queue: 'gpu',
    config: { format: 'god', scale: 'tiny', seed: seed + 1 },
  };
  const runId = `wf-test-${seed}-queued-${randomInt(1e9)}`;
  const unpolled = `unpolled-${randomInt(1e9)}`;
  await w.run(async () => {
    const handle = await w.client.workflow.start('reproductionWorkflow', {
      workflowId: runId,
      taskQueue: w.queues.cpu,
      args: [{ ...input([], [onGpu]), taskQueues: { cpu: w.queues.cpu, gpu: `${unpolled}-gpu` } }],
    });
    try {
      const deadline = Date.now() + 30_000;
      let row: RunRecord['stages'][number] | undefined;
      while (row?.status !== 'queued' && Date.now() < deadline) {
        row = (await runRecord(w.client, runId)).stages[0];
        await new Promise((r) => setTimeout(r, 300));
      }
      assert.equal(row?.status, 'queued');
      assert.equal(row?.taskQueue, `${unpolled}-gpu`);
      assert.equal(row?.startWorker, `LEA_TASK_QUEUE_PREFIX=${unpolled} npx lea worker --queue gpu`);
    } finally {
      await handle.terminate('test done');
    }
  });
});
