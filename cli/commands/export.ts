/**
 * `lea export RUN --ro-crate DIR [--with-files]`: a run's (or suite's) provenance as a Workflow Run RO-Crate
 * (lib/provenance/ro-crate.ts), gathered from Temporal (the record, the plan in the workflow's input, the
 * result's stage outputs) and the artifact store (each output's manifest: its files and the inputs it read).
 */
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { resolve } from 'node:path';
import type { ComputeProvenance } from '../../lib/compute/backend.js';
import { BadInputError } from '../../lib/errors.js';
import type { RunRecord, StageRecord, StageStatus } from '../../lib/pipeline/run-record.js';
import {
  buildRoCrate,
  writeCrate,
  type ArtifactDescription,
  type RunDescription,
} from '../../lib/provenance/ro-crate.js';
import { ArtifactStore, type ArtifactRef } from '../../lib/storage/artifact-store.js';
import type { WeightsRecord } from '../../lib/weights/import.js';
import type { ReproductionInput, ReproductionResult } from '../../workflows/reproduction.js';
import type { SuiteInput, SuiteResult } from '../../workflows/suite.js';
import { outputFolder } from '../args.js';
import { ensureServers, settingsFromEnv, withClient } from '../context.js';
import { runNotFound, runRecord, startInput } from '../run-records.js';

/** A live record's states of a stage that is still running. */
const RUNNING = { queued: 1, retrying: 1, stale: 1 };

async function artifact(store: ArtifactStore, ref: ArtifactRef): Promise<ArtifactDescription> {
  const m = await store.require(ref);
  const weights = m.meta.weights as WeightsRecord | undefined;
  return { key: m.key, files: m.files, ...(weights ? { weights } : {}) };
}

/** A run's description: its plan and record, each stage's output manifest and the manifests of its inputs. */
async function describeRun(
  client: Client,
  store: ArtifactStore,
  record: RunRecord,
  input: ReproductionInput,
): Promise<RunDescription> {
  const handle = client.workflow.getHandle(record.runId);
  const result = record.status === 'completed' ? ((await handle.result()) as ReproductionResult) : undefined;
  // before it completes, a run's stage outputs are not in Temporal: its record says how far each got
  const recorded = new Map(
    (result?.stages ?? record.stages).map((s): [string, Partial<StageRecord>] => [
      s.name,
      { ...s, status: s.status in RUNNING ? 'running' : (s.status as StageStatus) },
    ]),
  );
  const outputs = new Map<string, ArtifactRef>();
  const stages: RunDescription['stages'] = [];
  for (const plan of input.plan) {
    const s = recorded.get(plan.name) ?? {};
    const meta = s.output ? (await store.require(s.output)).meta : undefined;
    if (s.output) outputs.set(plan.name, s.output);
    // the output's lineage names every input it read (weights included); a stage without one, its upstream's
    const inputRefs =
      (meta?.inputs as Record<string, ArtifactRef> | undefined) ??
      Object.fromEntries(
        Object.entries(plan.needs).flatMap(([name, from]) => {
          const ref = outputs.get(from);
          return ref ? [[name, ref]] : [];
        }),
      );
    const inputs: Record<string, ArtifactDescription> = {};
    for (const [name, ref] of Object.entries(inputRefs)) inputs[name] = await artifact(store, ref);
    stages.push({
      name: plan.name,
      impl: plan.impl,
      needs: plan.needs,
      ...(plan.weights ? { weights: plan.weights } : {}),
      config: plan.config,
      status: s.status ?? 'pending',
      cached: s.cached ?? false,
      startedAt: s.startedAt ?? null,
      finishedAt: s.finishedAt ?? null,
      error: s.error ?? null,
      inputs,
      output: s.output ? await artifact(store, s.output) : null,
      ...(meta ? { implVersion: String(meta.codeVersion), computedBy: String(meta.run) } : {}),
      ...(meta?.compute ? { compute: meta.compute as ComputeProvenance } : {}),
    });
  }
  return {
    ...outcomeOf(record),
    codeVersion: input.codeVersion,
    stages,
    metricsStage: input.metricsStage,
    report: result?.report ? await artifact(store, result.report) : null,
  };
}

/** What a run's or a suite's record says about how it went and what it measured. */
function outcomeOf(r: RunRecord) {
  return {
    runId: r.runId,
    config: r.config,
    status: r.status,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    ...(r.error ? { error: r.error } : {}),
    metrics: r.metrics,
    definitions: r.metricDefinitions ?? {},
    ...(r.metricIntervals ? { intervals: r.metricIntervals } : {}),
    ...(r.intervalMethod ? { intervalMethod: r.intervalMethod } : {}),
    ...(r.sd ? { sd: r.sd } : {}),
  };
}

async function describe(client: Client, store: ArtifactStore, record: RunRecord): Promise<RunDescription> {
  const handle = client.workflow.getHandle(record.runId);
  if (!record.members) {
    const input = await startInput<ReproductionInput>(handle);
    if (!input?.plan) throw new BadInputError(`run '${record.runId}' is not a reproduction run or suite`);
    return describeRun(client, store, record, input);
  }
  const input = await startInput<SuiteInput>(handle);
  if (!input?.members) throw new BadInputError(`suite '${record.runId}' has no members in its input`);
  const members: RunDescription[] = [];
  for (const [i, m] of record.members.entries())
    members.push(await describeRun(client, store, m, input.members[i]!));
  const result = record.status === 'completed' ? ((await handle.result()) as SuiteResult) : undefined;
  return {
    ...outcomeOf(record),
    codeVersion: input.codeVersion,
    stages: [],
    report: result?.report ? await artifact(store, result.report) : null,
    members,
  };
}

export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description(
      "export a run's or suite's provenance (plan, stages, artifacts' sha256, metrics) as an RO-Crate",
    )
    .argument('<run>', 'run or suite id')
    .requiredOption(
      '--ro-crate <dir>',
      'write a Workflow Run RO-Crate (ro-crate-metadata.json) here',
      outputFolder,
    )
    .option('--with-files', 'also carry the small outputs: the record, the metrics stage output, the report')
    .action(async (runId: string, opts: { roCrate: string; withFiles?: boolean }) => {
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      const dir = resolve(opts.roCrate);
      try {
        const { record, description } = await withClient(async (client) => {
          const record = await runRecord(client, runId).catch((err) => runNotFound(runId, err));
          return { record, description: await describe(client, store, record) };
        });
        const crate = buildRoCrate(description, {
          exportedAt: new Date().toISOString(),
          withFiles: opts.withFiles ?? false,
          record,
        });
        await writeCrate(dir, crate, (key, path) => store.readBytes(key, path));
        const carried = crate.copies.length ? `, carrying ${crate.copies.length} artifact files` : '';
        console.log(`wrote the RO-Crate of ${runId} to ${dir}${carried}`);
      } finally {
        store.s3.destroy();
      }
    });
}
