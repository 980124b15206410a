/**
 * Records workflow histories for the replay test (test/replay.test.ts): runs the hello workflow and a small
 * reproduction (the data stages) on the servers the environment points at, with an in-process worker, and
 * writes their histories to test/histories/. Re-record after a deliberate, versioned workflow change:
 *   eval "$(npx lea dev env)" && node --import tsx scripts/record-histories.ts
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadInfraSettings, taskQueue } from '../lib/config/infra.js';
import type { StagePlan } from '../lib/pipeline/run-record.js';
import { connectClient } from '../workers/temporal-connection.js';
import { runWorkers } from '../workers/worker.js';
import type { ReproductionInput } from '../workflows/reproduction.js';

const settings = {
  ...loadInfraSettings(process.env),
  taskQueuePrefix: `record-${randomBytes(3).toString('hex')}`,
};
const client = await connectClient(settings.temporal);
const queues = { cpu: taskQueue(settings, 'cpu'), gpu: taskQueue(settings, 'gpu') };
const stage = (s: Pick<StagePlan, 'name' | 'impl' | 'needs' | 'config' | 'queue'>): StagePlan => ({
  timeoutMinutes: 5,
  heartbeatSeconds: 60,
  maxAttempts: 2,
  ...s,
});
const reproduction: ReproductionInput = {
  configName: 'replay-record',
  configFile: 'scripts/record-histories.ts',
  dataset: 'god',
  subject: 'sbj_1',
  codeVersion: 'record',
  taskQueues: queues,
  plan: [
    stage({
      name: 'synth',
      impl: 'synth',
      queue: 'cpu',
      needs: {},
      config: { format: 'god', scale: 'tiny', seed: 7 },
    }),
    stage({
      name: 'prepare',
      impl: 'prepare',
      queue: 'gpu',
      needs: { raw: 'synth' },
      config: { dataset: 'god', subject: 'sbj_1' },
    }),
  ],
  force: ['prepare'],
  metricsStage: 'prepare',
  baseline: {
    source: 'inline',
    text: 'name: replay\nsource: recorded\nmetrics:\n  train: { value: 600, tolerance: 0 }\n',
  },
};

const runs = [
  { file: 'hello.json', type: 'helloWorkflow', args: [{ message: 'replay', repeat: 2, seed: 1 }] },
  { file: 'reproduction-data-stages.json', type: 'reproductionWorkflow', args: [reproduction] },
];
const work = (async () => {
  for (const r of runs) {
    const handle = await client.workflow.start(r.type, {
      workflowId: `record-${r.type}-${randomBytes(3).toString('hex')}`,
      taskQueue: queues.cpu,
      args: r.args,
    });
    await handle.result();
    // The Temporal CLI writes the JSON history format that historyFromJSON (and the Web UI) read.
    const json = execFileSync(
      fileURLToPath(new URL('../.tools/venv/bin/temporal', import.meta.url)),
      [
        'workflow',
        'show',
        '--workflow-id',
        handle.workflowId,
        '--address',
        settings.temporal.address,
        '--namespace',
        settings.temporal.namespace,
        '--output',
        'json',
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    writeFileSync(new URL(`../test/histories/${r.file}`, import.meta.url), json);
    console.log(`recorded ${r.file}`);
  }
})();
await runWorkers(settings, ['cpu', 'gpu'], work);
await client.connection.close();
