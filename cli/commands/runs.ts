/** `lea status`, `lea runs`, `lea cancel`, `lea resume`: runs as Temporal knows them. */
import { defaultPayloadConverter, WorkflowIdReusePolicy } from '@temporalio/client';
import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { taskQueue } from '../../lib/config/infra.js';
import { BadInputError } from '../../lib/errors.js';
import { settingsFromEnv, withClient } from '../context.js';
import { formatRecord, listRuns, runNotFound, runRecord } from '../run-records.js';
import { noWorkerText, workerPolls } from '../task-queues.js';

export function registerRunsCommands(program: Command): void {
  program
    .command('status')
    .description('show one run: stages (state, cached, seconds, step, loss), metrics, verdict')
    .argument('<run>', 'run id')
    .option('--json', 'print the run record as JSON')
    .action((runId: string, opts: { json?: boolean }) =>
      withClient(async (client) => {
        const record = await runRecord(client, runId).catch((err) => runNotFound(runId, err));
        console.log(opts.json ? JSON.stringify(record, null, 2) : formatRecord(record));
      }),
    );

  program
    .command('runs')
    .description('list runs, oldest first')
    .option('--regressions', 'only runs whose regression verdict is "regressed"')
    .option('--json', 'print an array of run records')
    .action((opts: { regressions?: boolean; json?: boolean }) =>
      withClient(async (client) => {
        const records = await listRuns(client, opts.regressions ? `LeaVerdict = 'regressed'` : undefined);
        if (opts.json) console.log(JSON.stringify(records, null, 2));
        else for (const r of records) console.log(formatRecord(r));
      }),
    );

  program
    .command('cancel')
    .description(
      'cancel a running run (its stages stop at their next heartbeat); one no worker can advance is terminated',
    )
    .argument('<run>', 'run id')
    .action((runId: string) =>
      withClient(async (client) => {
        const handle = client.workflow.getHandle(runId);
        const d = await handle.describe().catch((err) => runNotFound(runId, err));
        // Temporal accepts a cancel request for a closed workflow and ignores it: say so instead.
        if (d.status.name !== 'RUNNING') {
          throw new BadInputError(
            `run '${runId}' is ${d.status.name.toLowerCase()}: there is nothing to cancel`,
          );
        }
        // A cancel is carried out by a worker running the run's workflow: with none polling its queue (a run
        // no worker ever picked up, or whose workers are all gone) it would wait, so the run is terminated.
        if (!(await workerPolls(client, d.taskQueue))) {
          await handle.terminate(`cancelled with lea cancel while ${noWorkerText(d.taskQueue)}`);
          console.log(`terminated: ${runId} (no worker polls '${d.taskQueue}' to carry out a cancel)`);
          return;
        }
        await handle.cancel();
        console.log(`cancel requested: ${runId}`);
      }),
    );

  program
    .command('resume')
    .description('re-run a failed or cancelled run with the same input; finished stages come from the cache')
    .argument('<run>', 'run id')
    .action((runId: string) =>
      withClient(async (client) => {
        const handle = client.workflow.getHandle(runId);
        const d = await handle.describe().catch((err) => runNotFound(runId, err));
        if (d.status.name === 'RUNNING' || d.status.name === 'COMPLETED') {
          throw new BadInputError(
            `run '${runId}' is ${d.status.name.toLowerCase()}: only failed or cancelled runs resume`,
          );
        }
        const history = await handle.fetchHistory();
        const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
        const args = (started?.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p));
        // a suite's runs get new ids from the new suite's (their finished stages come from the cache)
        const newId = `${runId.replace(/-r[0-9a-f]{6}$/, '')}-r${randomBytes(3).toString('hex')}`;
        await client.workflow.start(d.type, {
          workflowId: newId,
          taskQueue: taskQueue(settingsFromEnv(), 'cpu'),
          args,
          memo: { ...(d.memo ?? {}), resumedFrom: runId, stages: [], metrics: {}, verdict: null },
          workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        });
        console.log(newId);
      }),
    );
}
