/** `lea worker`: poll task queues until SIGINT/SIGTERM (the Temporal runtime then shuts down gracefully). */
import { Option, type Command } from 'commander';
import { taskQueue } from '../../lib/config/infra.js';
import { positiveInt } from '../args.js';
import { announceCompute, runWorkers } from '../../workers/worker.js';
import { ensureServers, settingsFromEnv } from '../context.js';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run workers for the cpu and/or gpu task queue (training and sampling go to gpu)')
    .addOption(
      new Option('--queue <queue>', 'which queue: cpu, gpu, or all (both, one machine)')
        .choices(['cpu', 'gpu', 'all'])
        .default('all'),
    )
    .option('--max-activities <n>', 'concurrent activities per queue on this worker', positiveInt)
    .action(async (opts: { queue: 'cpu' | 'gpu' | 'all'; maxActivities?: number }) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const queues = opts.queue === 'all' ? (['cpu', 'gpu'] as const) : ([opts.queue] as const);
      console.error(
        `lea: worker polling ${queues.map((q) => `'${taskQueue(settings, q)}'`).join(' and ')} at ${settings.temporal.address}`,
      );
      await announceCompute([...queues]);
      await runWorkers(settings, [...queues], undefined, opts.maxActivities);
    });
}
