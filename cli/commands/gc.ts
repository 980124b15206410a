/**
 * `lea gc [--dry-run] [--keep N]`: removes scratch folders of finished attempts (LEA_HOME/work on this machine)
 * and checkpoints of completed stages beyond the newest N per stage, never what a running or resumable run
 * needs (lib/pipeline/gc.ts says what that is).
 */
import type { Command } from 'commander';
import { collectGarbage } from '../../lib/pipeline/gc.js';
import type { RunStatus } from '../../lib/pipeline/run-record.js';
import { ArtifactStore } from '../../lib/storage/artifact-store.js';
import { nonNegativeInt } from '../args.js';
import { ensureServers, settingsFromEnv, withClient } from '../context.js';

const STATUS: Record<string, RunStatus> = {
  RUNNING: 'running',
  COMPLETED: 'completed',
  CONTINUED_AS_NEW: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TERMINATED: 'terminated',
  TIMED_OUT: 'timed_out',
};

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export function registerGcCommand(program: Command): void {
  program
    .command('gc')
    .description(
      "remove finished attempts' scratch folders and completed stages' older checkpoints (never what a running or resumable run needs)",
    )
    .option('--dry-run', 'list what would be removed, remove nothing')
    .option('--keep <n>', 'checkpoints kept per completed stage, the newest', nonNegativeInt, 1)
    .option('--json', 'print the result as JSON')
    .action(async (opts: { dryRun?: boolean; keep: number; json?: boolean }) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      try {
        const result = await withClient((client) =>
          collectGarbage(store, settings.home, {
            keep: opts.keep,
            dryRun: Boolean(opts.dryRun),
            runStatus: (runId) =>
              client.workflow
                .getHandle(runId)
                .describe()
                .then(
                  (d) => STATUS[d.status.name] ?? 'unknown',
                  (err: Error) => {
                    if (err.name === 'WorkflowNotFoundError') return 'unknown';
                    throw err;
                  },
                ),
          }),
        );
        if (opts.json) {
          console.log(JSON.stringify({ dryRun: Boolean(opts.dryRun), ...result }, null, 2));
          return;
        }
        const verb = opts.dryRun ? 'would remove' : 'removed';
        const { scratch, checkpoints } = result;
        console.log(
          `scratch: ${verb} ${scratch.removed.length} finished attempts' folders (${mb(scratch.bytes)})`,
        );
        for (const p of scratch.removed) console.log(`  ${p}`);
        console.log(
          `checkpoints: ${verb} ${checkpoints.removed.length} (${checkpoints.blobs} files no other artifact uses, ${mb(checkpoints.bytes)})`,
        );
        for (const k of checkpoints.removed) console.log(`  ${k}`);
      } finally {
        store.s3.destroy();
      }
    });
}
