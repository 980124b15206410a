/**
 * `lea tensorboard RUN [--out DIR]`: a run's (or a suite's runs') TensorBoard event files in one logdir, a
 * folder per run and stage (DIR/<run>/<stage>/), so `tensorboard --logdir DIR` shows every training curve and
 * the metrics, and compares runs. Event files are written when each stage ends: a running run contributes the
 * stages it has finished.
 */
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { BadInputError } from '../../lib/errors.js';
import type { StageRecord } from '../../lib/pipeline/run-record.js';
import { TENSORBOARD_DIR } from '../../lib/report/tensorboard.js';
import { ArtifactStore } from '../../lib/storage/artifact-store.js';
import type { RunProgress } from '../../workflows/reproduction.js';
import type { SuiteResult } from '../../workflows/suite.js';
import { outputFolder } from '../args.js';
import { runNotFound } from '../run-records.js';
import { ensureServers, settingsFromEnv, withClient } from '../context.js';

/** The runs a run id stands for (a suite: its runs) with the stages each has finished. */
async function finishedStages(
  client: Client,
  runId: string,
): Promise<{ runId: string; stages: StageRecord[] }[]> {
  const handle = client.workflow.getHandle(runId);
  const d = await handle.describe().catch((err: unknown) => runNotFound(runId, err));
  if (d.type === 'suiteWorkflow') {
    const memo = (d.memo ?? {}) as { suite?: { runId: string }[] };
    const members =
      d.status.name === 'COMPLETED' ? ((await handle.result()) as SuiteResult).members : memo.suite;
    const out = [];
    for (const m of members ?? []) out.push(...(await finishedStages(client, m.runId).catch(() => [])));
    return out;
  }
  if (d.status.name === 'COMPLETED')
    return [{ runId, stages: ((await handle.result()) as { stages: StageRecord[] }).stages }];
  if (d.status.name === 'RUNNING') {
    const progress = await client.withDeadline(Date.now() + 10_000, () =>
      handle.query<RunProgress>('progress'),
    );
    return [{ runId, stages: progress.stages }];
  }
  throw new BadInputError(
    `run '${runId}' is ${d.status.name.toLowerCase()}: lea resume it, then export its curves`,
  );
}

export function registerTensorboardCommand(program: Command): void {
  program
    .command('tensorboard')
    .description(
      "put a run's or a suite's TensorBoard event files (training curves, metrics) in one logdir: DIR/<run>/<stage>/",
    )
    .argument('<run>', 'run or suite id')
    .option('--out <dir>', 'the logdir (default ./tensorboard-RUN)', outputFolder)
    .action(async (runId: string, opts: { out?: string }) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      const out = resolve(opts.out ?? `tensorboard-${runId}`);
      try {
        const runs = await withClient((client) => finishedStages(client, runId));
        let files = 0;
        for (const run of runs) {
          for (const s of run.stages) {
            if (!s.output) continue;
            const logs = (await store.require(s.output)).files.filter((f) =>
              f.path.startsWith(`${TENSORBOARD_DIR}/`),
            );
            const dir = join(out, run.runId, s.name);
            if (logs.length) await mkdir(dir, { recursive: true });
            for (const f of logs) await store.downloadFile(s.output, f.path, join(dir, basename(f.path)));
            files += logs.length;
          }
        }
        if (files === 0)
          throw new BadInputError(
            `run '${runId}' has no event files yet (they are written when a stage ends; stages computed by an older ` +
              'version have none)',
          );
        console.log(`${files} event files in ${out}\ntensorboard --logdir ${out}`);
      } finally {
        store.s3.destroy();
      }
    });
}
