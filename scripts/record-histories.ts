/**
 * Records workflow histories for the replay test (test/replay.test.ts): runs the hello workflow, the smoke
 * reproduction (with a forced stage and a baseline, so every branch of the workflow is taken) and a suite of two
 * smoke subjects (with a baseline) on the servers the environment points at, with in-process workers, and
 * writes their histories to test/histories/. Re-record after a deliberate, versioned workflow change (name
 * files to record only those):
 *   eval "$(npx lea dev env)" && node --import tsx scripts/record-histories.ts [FILE.json ...]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInfraSettings, taskQueue } from '../lib/config/infra.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import { startSpec, suiteSpec } from '../cli/pipelines.js';
import { connectClient } from '../workers/temporal-connection.js';
import { runWorkers } from '../workers/worker.js';

const settings = {
  ...loadInfraSettings(process.env),
  taskQueuePrefix: `record-${randomBytes(3).toString('hex')}`,
};
const client = await connectClient(settings.temporal);
const queues = { cpu: taskQueue(settings, 'cpu'), gpu: taskQueue(settings, 'gpu') };
const smoke = loadExperimentConfig('configs/smoke.yaml');
const baselineFile = join(tmpdir(), `record-baseline-${process.pid}.yaml`);
writeFileSync(
  baselineFile,
  'name: replay\nsource: recorded\nmetrics:\n  encode.pearson: { value: 0, tolerance: 1 }\n',
);
const reproduction = startSpec(smoke, settings, {
  configFile: 'configs/smoke.yaml',
  force: ['ridge'],
  baselineFile,
});

const twoSubjects = ['data.source.subjects=2'];
const sbj2 = [
  ...twoSubjects,
  'name=smoke-sbj_2',
  'data.subject=sbj_2',
  'data.roiPatch=[38, 38, 30, 30, 23, 23, 15, 45]',
];
const suite = suiteSpec(
  [twoSubjects, sbj2].map((set) => ({
    cfg: loadExperimentConfig('configs/smoke.yaml', set),
    configFile: 'configs/smoke.yaml',
  })),
  settings,
  { baselineFile },
  `record-${randomBytes(3).toString('hex')}`,
);

const only = process.argv.slice(2);
const runs = [
  { file: 'hello.json', type: 'helloWorkflow', args: [{ message: 'replay', repeat: 2, seed: 1 }] },
  { file: 'reproduction-smoke.json', type: reproduction.workflowType, args: reproduction.args },
  { file: 'suite-smoke.json', type: suite.workflowType, args: suite.args },
].filter((r) => only.length === 0 || only.includes(r.file));
const work = (async () => {
  for (const r of runs) {
    const handle = await client.workflow.start(r.type, {
      // the replay test replays each history under its file's name (a suite's runs' ids derive from it)
      workflowId: r.file.replace(/\.json$/, ''),
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
