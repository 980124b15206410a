/** `lea run CONFIG`: start a pipeline run; with --wait, follow it to the end (with a local worker if needed). */
import {
  WorkflowFailedError,
  WorkflowIdReusePolicy,
  type Client,
  type WorkflowHandle,
} from '@temporalio/client';
import { Option, type Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadExperimentConfig, type ExperimentConfig } from '../../lib/config/experiment.js';
import { dryRun } from '../dry-run.js';
import { checkPinnedRun, checkWeights, runSpec, withSeeds, type StartSpec } from '../pipelines.js';
import { positiveInt } from '../args.js';
import { BadInputError } from '../../lib/errors.js';
import { memberLabel } from '../../lib/pipeline/suite.js';
import { watchProgress } from '../run-progress.js';
import { noWorkerText, workerPolls } from '../task-queues.js';
import { exitCodeOf, formatRecord, runRecord } from '../run-records.js';
import { taskQueue, type InfraSettings } from '../../lib/config/infra.js';
import { connectClient } from '../../workers/temporal-connection.js';
import { installWorkerLogging, runWorkers } from '../../workers/worker.js';
import { ensureServers, settingsFromEnv } from '../context.js';

interface RunOptions extends FollowOptions {
  dryRun?: boolean;
  set: string[];
  force: string[];
  seeds?: number;
}

/**
 * A run submitted without --wait (or without a local worker) waits silently for workers: say which queues
 * nobody polls (the run's own, and those its stages go to) and how to start a worker for each.
 */
async function warnUnpolled(client: Client, settings: InfraSettings, queues: ('cpu' | 'gpu')[]) {
  for (const kind of ['cpu', 'gpu'] as const) {
    if (!queues.includes(kind)) continue;
    const queue = taskQueue(settings, kind);
    // The cpu queue carries the run's workflow itself; the gpu queue only stage activities.
    if (await workerPolls(client, queue, kind === 'cpu' ? 'workflow' : 'activity')) continue;
    const what = kind === 'cpu' ? 'the run does not start' : 'its gpu stages wait';
    console.error(`lea: warning: ${noWorkerText(queue)}; until one does, ${what}`);
  }
}

/** The queues a run's (or a suite's runs') stages go to: a suite's members are reproduction inputs. */
function planQueues(input: unknown): ('cpu' | 'gpu')[] {
  const inputs = (input as { members?: unknown[] }).members ?? [input];
  return inputs.flatMap((i) => (i as { plan?: { queue: 'cpu' | 'gpu' }[] }).plan?.map((p) => p.queue) ?? []);
}

/** A suite's progress as one list of stages, each named with its subject. */
async function suiteStages(client: Client, suiteId: string) {
  const record = await client.withDeadline(Date.now() + 10_000, () => runRecord(client, suiteId));
  const stages = (record.members ?? []).flatMap((m) =>
    m.stages.map((s) => ({ ...s, name: `${memberLabel(m)} ${s.name}` })),
  );
  return { ...record, stages };
}

/** True once some worker has started the run's first workflow task. */
async function pickedUp(handle: WorkflowHandle, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  do {
    const d = await handle.describe();
    if (d.historyLength >= 3 || d.status.name !== 'RUNNING') return true;
    await sleep(500);
  } while (Date.now() < deadline);
  return false;
}

async function follow(settings: InfraSettings, client: Client, handle: WorkflowHandle, opts: FollowOptions) {
  const queue = taskQueue(settings, 'cpu');
  // A crashed worker stays listed as a poller for a while, so "someone polls" is checked by the run itself
  // being picked up, not by the poller list alone.
  const local =
    opts.localWorker === 'always' ||
    (opts.localWorker === 'auto' &&
      (!(await workerPolls(client, queue)) || !(await pickedUp(handle, 15_000))));
  if (!local) return handle.result();
  installWorkerLogging(settings, { console: opts.verbose === true });
  console.error(
    `lea: no worker picked up '${queue}': running cpu and gpu workers in this process until the run ends`,
  );
  return runWorkers(settings, ['cpu', 'gpu'], handle.result());
}

/** A run's id stamp: its start time to the second and 6 random hex digits. */
export const runStamp = (): string =>
  `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;

/** How `lea run` and `lea sweep` follow what they start. */
export interface FollowOptions {
  wait?: boolean;
  json?: boolean;
  localWorker: 'auto' | 'always' | 'never';
  baseline?: string;
  verbose?: boolean;
}

/** `--local-worker`, for the commands that start and follow a run (`lea run`, `lea sweep`). */
export const localWorkerOption = (): Option =>
  new Option('--local-worker <when>', 'with --wait, run a worker in this process')
    .choices(['auto', 'always', 'never'])
    .default('auto');

/**
 * Starts a checked run, suite or sweep: its servers, weights and pinned run checked first; without --wait prints
 * its id, with --wait follows it to the end (a local worker if none picks it up) and prints its record.
 */
export async function startRun(
  spec: StartSpec & { runId: string },
  cfgs: ExperimentConfig[],
  settings: InfraSettings,
  opts: FollowOptions,
): Promise<void> {
  const { workflowType, args, memo, runId } = spec;
  await ensureServers(settings);
  for (const cfg of cfgs) await checkWeights(cfg, settings);
  const client = await connectClient(settings.temporal);
  try {
    await checkPinnedRun(client, opts.baseline);
    const handle = await client.workflow.start(workflowType, {
      workflowId: runId,
      taskQueue: taskQueue(settings, 'cpu'),
      args,
      memo,
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
    });
    console.error(`lea: started run ${runId}`);
    if (!opts.wait || opts.localWorker === 'never')
      await warnUnpolled(client, settings, ['cpu', ...planQueues(args[0])]);
    if (!opts.wait) {
      console.log(opts.json ? JSON.stringify({ runId }) : runId);
      return;
    }
    const finished = follow(settings, client, handle, opts);
    const watching =
      workflowType === 'reproductionWorkflow'
        ? watchProgress(client, runId, finished)
        : workflowType === 'suiteWorkflow' &&
          watchProgress(client, runId, finished, { read: () => suiteStages(client, runId) });
    try {
      // A run that ended without a result (failed, cancelled, ...) is still reported: its record says why.
      const result: unknown = await finished.catch((err: unknown) => {
        if (err instanceof WorkflowFailedError) return undefined;
        throw err;
      });
      const record = await runRecord(client, runId);
      console.log(
        opts.json
          ? JSON.stringify(result === undefined ? record : { ...record, result }, null, 2)
          : formatRecord(record),
      );
      process.exitCode = exitCodeOf(record);
      if (process.exitCode !== 0)
        console.error(`lea: run ${runId} ${record.status === 'completed' ? record.verdict : record.status}`);
    } finally {
      await watching;
    }
  } finally {
    await client.connection.close();
  }
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description(
      'start a pipeline run from a config; prints the run id. Several configs start one suite: their runs ' +
        'together (shared stages computed once), reported as a row per subject and the mean',
    )
    .argument('<configs...>', 'YAML or JSON experiment config(s)')
    .option('--wait', 'wait for the run to finish and print its result')
    .option(
      '--dry-run',
      'check everything the run reads, print the plan with measured cost estimates; start nothing',
    )
    .option('--set <key=value...>', 'override a config field (repeatable)', [])
    .option('--json', 'print the run id, then (with --wait) the run record as JSON')
    .option('--force <stage...>', 'recompute these stages (and everything downstream) although cached', [])
    .option(
      '--baseline <file>',
      'baseline file (expected metrics with tolerances) for a regression verdict (of the mean, for a suite)',
    )
    .option(
      '--seeds <n>',
      "run each config under n seeds (its seed, seed+1, ...) as one suite; the config's seedScope says what a seed re-draws",
      positiveInt,
    )
    .option(
      '--verbose',
      "with --wait, print the in-process worker's Temporal SDK log on stderr (always in LEA_HOME/logs/worker.log)",
    )
    .addOption(localWorkerOption())
    .action(async (configFiles: string[], opts: RunOptions) => {
      const loaded = configFiles.map((file) => loadExperimentConfig(file, opts.set));
      configFiles.forEach((file, i) => {
        const cfg = loaded[i]!;
        if (cfg.pipeline === 'reproduction' && cfg.sweep)
          throw new BadInputError(`${file}: has a sweep section: start it with lea sweep ${file}`);
      });
      const cfgs = opts.seeds === undefined ? loaded : withSeeds(loaded, configFiles, opts.seeds);
      const settings = settingsFromEnv();
      if (opts.dryRun) {
        for (const [i, cfg] of cfgs.entries())
          await dryRun(
            cfg,
            settings,
            { configFile: configFiles[i]!, force: opts.force, baselineFile: opts.baseline },
            opts,
          );
        return;
      }
      // Everything the run will read is checked before a server starts or a workflow is submitted.
      const spec = runSpec(
        cfgs,
        configFiles,
        settings,
        { force: opts.force, baselineFile: opts.baseline },
        runStamp(),
      );
      await startRun(spec, cfgs, settings, opts);
    });
}
