/** `lea schedule create|list|pause|unpause|trigger|delete`: regression runs on Temporal Schedules. */
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Command } from 'commander';
import { loadExperimentConfig } from '../../lib/config/experiment.js';
import { taskQueue } from '../../lib/config/infra.js';
import { BadInputError } from '../../lib/errors.js';
import { settingsFromEnv, withClient } from '../context.js';
import { checkPinnedRun, checkWeights, runSpec } from '../pipelines.js';

export function registerScheduleCommands(program: Command): void {
  const schedule = program.command('schedule').description('scheduled regression runs (Temporal Schedules)');

  schedule
    .command('create')
    .description(
      'run a config (several: a suite) on a cron schedule; a run still going when the next is due makes it skip',
    )
    .argument('<name>', 'schedule id')
    .requiredOption('--config <files...>', 'experiment config(s) (frozen into the schedule as they are now)')
    .requiredOption('--cron <expr>', 'cron expression, e.g. "0 3 * * 1"')
    .option('--set <key=value...>', 'override a config field (repeatable)', [])
    .option(
      '--baseline <file>',
      'baseline file: each run (a suite: its mean) gets a regression verdict against it',
    )
    .action((name: string, opts: { config: string[]; cron: string; set: string[]; baseline?: string }) => {
      const cfgs = opts.config.map((file) => loadExperimentConfig(file, opts.set));
      const settings = settingsFromEnv();
      // Temporal appends each start's time to the id, so a suite's runs get ids of their own too (memberRunId)
      const { workflowType, args, memo, runId } = runSpec(
        cfgs,
        opts.config,
        settings,
        { baselineFile: opts.baseline },
        `scheduled-${name}`,
      );
      return withClient(async (client) => {
        for (const cfg of cfgs) await checkWeights(cfg, settings);
        await checkPinnedRun(client, opts.baseline);
        await client.schedule
          .create({
            scheduleId: name,
            spec: { cronExpressions: [opts.cron] },
            action: {
              type: 'startWorkflow',
              workflowType,
              args,
              taskQueue: taskQueue(settings, 'cpu'),
              workflowId: runId,
              memo: { ...memo, schedule: name },
            },
            policies: { overlap: ScheduleOverlapPolicy.SKIP },
            memo: { config: opts.config.join(' ') },
          })
          .catch((err: unknown) => {
            // The SDK turns the server's "invalid schedule spec" into a TypeError; the cron is the spec's only part.
            throw err instanceof TypeError ? new BadInputError(`--cron '${opts.cron}': ${err.message}`) : err;
          });
        console.log(`created schedule ${name}`);
      });
    });

  schedule
    .command('list')
    .description('list schedules with their next run times')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withClient(async (client) => {
        const rows = [];
        for await (const s of client.schedule.list()) {
          rows.push({
            id: s.scheduleId,
            paused: s.state.paused,
            next: s.info.nextActionTimes.slice(0, 3).map((d) => d.toISOString()),
            recent: s.info.recentActions.map((a) => a.action.workflow.workflowId),
          });
        }
        if (opts.json) console.log(JSON.stringify(rows, null, 2));
        else
          for (const r of rows)
            console.log(`${r.id}${r.paused ? ' (paused)' : ''}  next: ${r.next.join(', ') || '-'}`);
      }),
    );

  for (const [verb, help] of [
    ['pause', 'pause a schedule'],
    ['unpause', 'unpause a schedule'],
    ['trigger', 'start a run of the schedule now'],
    ['delete', 'delete a schedule (its runs stay)'],
  ] as const) {
    schedule
      .command(verb)
      .description(help)
      .argument('<name>', 'schedule id')
      .action((name: string) =>
        withClient(async (client) => {
          const handle = client.schedule.getHandle(name);
          // describe first: on a deleted schedule the verbs themselves fail with an unrelated message
          await handle.describe().catch((err) => {
            throw err instanceof ScheduleNotFoundError ? new BadInputError(`no schedule '${name}'`) : err;
          });
          if (verb === 'pause') await handle.pause('paused with lea schedule pause');
          else if (verb === 'unpause') await handle.unpause();
          else if (verb === 'trigger') await handle.trigger();
          else await handle.delete();
          console.log(`${verb}: ${name}`);
        }),
      );
  }
}
