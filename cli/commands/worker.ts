/** `lea worker`: poll a task queue until SIGINT/SIGTERM (the Temporal runtime then shuts down gracefully). */
import { Option, type Command } from 'commander';
import { taskQueue } from '../../lib/config/infra.js';
import { positiveInt } from '../args.js';
import { createWorker } from '../../workers/worker.js';
import { ensureServers, settingsFromEnv } from '../context.js';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a worker for the cpu or gpu task queue')
    .addOption(new Option('--queue <queue>', 'task queue kind').choices(['cpu', 'gpu']).default('cpu'))
    .option('--max-activities <n>', 'concurrent activities on this worker', positiveInt)
    .action(async (opts: { queue: 'cpu' | 'gpu'; maxActivities?: number }) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const worker = await createWorker(settings, {
        queue: opts.queue,
        maxConcurrentActivities: opts.maxActivities,
      });
      console.error(
        `lea: worker polling '${taskQueue(settings, opts.queue)}' at ${settings.temporal.address}`,
      );
      await worker.run();
    });
}
