/**
 * `lea report RUN [--out DIR]`: renders a run's report from its stored report input (runs/<RUN>/report-input)
 * into a folder and stores it as the artifact runs/<RUN>/report.
 * `lea report --compare RUN_A RUN_B [--out DIR]`: the two runs side by side, into a folder only.
 */
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { BadInputError } from '../../lib/errors.js';
import { outputFolder } from '../args.js';
import { loadReportInput, renderAndStoreReport, reportInputKey, reportKey } from '../../lib/report/load.js';
import { writeComparison } from '../../lib/report/report.js';
import { ArtifactStore, checkKey } from '../../lib/storage/artifact-store.js';
import { ensureServers, settingsFromEnv, withClient } from '../context.js';

/** The stored report input of a run, with an error that says what is missing: the run, or its report stage. */
async function load(store: ArtifactStore, runId: string) {
  const key = reportInputKey(checkKey(runId, 'run id'));
  if (!(await store.exists(key))) {
    const known = await withClient((client) =>
      client.workflow
        .getHandle(runId)
        .describe()
        .then(
          () => true,
          (err: Error) => {
            if (err.name === 'WorkflowNotFoundError') return false;
            throw err;
          },
        ),
    );
    throw new BadInputError(
      known
        ? `run '${runId}' has no stored report input (artifact '${key}'): its report stage has not run`
        : `no run '${runId}': Temporal does not know it and the store has no report of it`,
    );
  }
  return loadReportInput(store, key);
}

export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description("write a run's report (static HTML page with its images) to a folder and the artifact store")
    .argument('<runs...>', 'run id (two with --compare)')
    .option('--compare', 'compare two runs side by side: metric deltas and reconstruction grids')
    .option('--out <dir>', 'output folder (default ./report-RUN, or ./report-RUN_A-vs-RUN_B)', outputFolder)
    .action(async (runs: string[], opts: { compare?: boolean; out?: string }) => {
      if (opts.compare ? runs.length !== 2 : runs.length !== 1) {
        throw new BadInputError(
          opts.compare
            ? `--compare takes two runs, got ${runs.length}`
            : `expected one run, got ${runs.length} (use --compare for two)`,
        );
      }
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      try {
        if (opts.compare) {
          const [a, b] = runs as [string, string];
          const out = resolve(opts.out ?? `report-${a}-vs-${b}`);
          const { files } = await writeComparison(await load(store, a), await load(store, b), out);
          console.log(
            `wrote the comparison of ${a} and ${b} to ${join(out, 'index.html')} (${files.length} files)`,
          );
          return;
        }
        const runId = runs[0]!;
        const out = resolve(opts.out ?? `report-${runId}`);
        // a suite's report is its table, stored whole when the suite ends: it is fetched, not re-rendered
        const stored = await store.ref(reportKey(checkKey(runId, 'run id')));
        if (stored && (await store.require(stored)).meta.suite) {
          await store.download(stored, out);
          console.log(
            `wrote the report of suite ${runId} to ${join(out, 'index.html')}; stored as ${stored.key}`,
          );
          return;
        }
        const { key, files } = await renderAndStoreReport(store, runId, await load(store, runId), out);
        console.log(
          `wrote the report of ${runId} to ${join(out, 'index.html')} (${files.length} files); stored as ${key}`,
        );
      } finally {
        store.s3.destroy();
      }
    });
}
