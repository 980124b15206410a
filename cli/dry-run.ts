/**
 * `lea run CONFIG --dry-run`: everything `lea run` checks before it starts (config, dataset manifest, baseline,
 * every imported network: present, of the right kind and architecture), then the plan with each stage's cache
 * state (lib/pipeline/stage-key.ts) and the cost of each stage that would run, measured on this machine's
 * backend (lib/pipeline/estimate.ts). Starts no run.
 */
import { STAGES } from '../activities/stages/index.js';
import { initCompute } from '../lib/compute/backend.js';
import type { ExperimentConfig } from '../lib/config/experiment.js';
import type { InfraSettings } from '../lib/config/infra.js';
import { dataShape, estimatePlan, type StageEstimate } from '../lib/pipeline/estimate.js';
import type { StagePlan } from '../lib/pipeline/run-record.js';
import { planCacheStates, type CacheState } from '../lib/pipeline/stage-key.js';
import { ArtifactStore } from '../lib/storage/artifact-store.js';
import { weightsRecord, type WeightsRecord } from '../lib/weights/import.js';
import { BadInputError } from '../lib/errors.js';
import { ensureServers } from './context.js';
import { checkWeights, startSpec, type StartOptions, type StartSpec } from './pipelines.js';

const fmt = (n: number | undefined, digits = 1) => (n === undefined ? '' : n.toFixed(digits));

function hours(seconds: number | undefined): string {
  if (seconds === undefined) return '';
  return seconds < 3600 ? `${(seconds / 60).toFixed(1)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

/** The imported networks the plan reads, by stage input name (clip, vqgan, init, mae, ...). */
async function weightsByInput(
  plan: StagePlan[],
  store: ArtifactStore,
): Promise<Record<string, WeightsRecord>> {
  const names = Object.fromEntries(plan.flatMap((p) => Object.entries(p.weights ?? {})));
  const out: Record<string, WeightsRecord> = {};
  for (const [input, name] of Object.entries(names)) out[input] = (await weightsRecord(store, name))!;
  return out;
}

export async function dryRun(
  cfg: ExperimentConfig,
  settings: InfraSettings,
  start: StartOptions,
  opts: { json?: boolean },
): Promise<void> {
  // every problem at once (config, manifest, baseline, weights), not only the first
  const problems: string[] = [];
  let spec: StartSpec | undefined;
  try {
    spec = startSpec(cfg, settings, start);
  } catch (err) {
    if (!(err instanceof BadInputError)) throw err;
    problems.push(err.message);
  }
  try {
    await checkWeights(cfg, settings);
  } catch (err) {
    if (!(err instanceof BadInputError)) throw err;
    problems.push(...err.message.split('; '));
  }
  if (problems.length || !spec) throw new BadInputError(problems.join('\nlea: '));
  if (cfg.pipeline !== 'reproduction') {
    console.log(
      opts.json ? JSON.stringify({ workflowType: spec.workflowType }) : `would start ${spec.workflowType}`,
    );
    return;
  }
  const plan = (spec.args[0] as { plan: StagePlan[] }).plan;
  // The cache is in the store, which (embedded) may need starting, as for `lea run`.
  await ensureServers(settings);
  const store = ArtifactStore.fromSettings(settings.s3);
  const [weights, cache] = await Promise.all([
    weightsByInput(plan, store),
    planCacheStates(store, plan, STAGES, start.force ?? []),
  ]).finally(() => store.s3.destroy());
  const data = dataShape(cfg);
  const provenance = await initCompute();
  // A cached stage costs nothing, so it is not measured.
  const toRun = plan.filter((p) => cache[p.name] !== 'cached');
  const measured: StageEstimate[] = data
    ? await estimatePlan(toRun, cfg, data, weights, (line) => console.error(`lea: ${line}`))
    : toRun.map((p) => ({ stage: p.name, queue: p.queue, note: 'no estimate: data.roiPatch is not set' }));
  const estimates = plan.map(
    (p) => measured.find((e) => e.stage === p.name) ?? { stage: p.name, queue: p.queue, seconds: 0 },
  );
  const weightsOf = (p: StagePlan) =>
    Object.entries(p.weights ?? {})
      .map(([input, name]) => `${input}=${name}`)
      .join(' ');
  if (opts.json) {
    const stages = estimates.map((e, i) => ({
      ...e,
      cached: cache[e.stage] === 'cached',
      forced: cache[e.stage] === 'forced',
      weights: plan[i]!.weights ?? {},
    }));
    console.log(JSON.stringify({ backend: provenance, data, stages }, null, 2));
    return;
  }
  console.log(
    `plan of ${cfg.name}: ${plan.length} stages; backend ${provenance.backend} (${provenance.device}, ${provenance.threads} threads)`,
  );
  if (data)
    console.log(
      `data: ${data.train} training + ${data.test} test items, ${data.voxels} voxels, ${data.imageSize} px images`,
    );
  const rows = estimates.map((e, i) => [
    e.stage,
    e.queue,
    cache[e.stage]!,
    e.parameters === undefined ? '' : `${(e.parameters / 1e6).toFixed(1)} M`,
    e.unit ?? '',
    e.units === undefined ? '' : String(e.units),
    e.flopsPerUnit === undefined ? '' : fmt(e.flopsPerUnit / 1e9, 2),
    fmt(e.secondsPerUnit, 3),
    hours(e.seconds),
    [weightsOf(plan[i]!), e.note ?? ''].filter(Boolean).join('; '),
  ]);
  const head = [
    'stage',
    'queue',
    'cache',
    'params',
    'unit',
    'units',
    'GFLOP/unit',
    's/unit',
    'estimate',
    'weights; notes',
  ];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  for (const r of [head, ...rows])
    console.log(r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]!))).join('  '));
  const count = (state: CacheState) => Object.values(cache).filter((c) => c === state).length;
  const [cached, forced] = [count('cached'), count('forced')];
  console.log(
    `${cached} of ${plan.length} stages cached${forced ? `, ${forced} forced` : ''}` +
      (cached < plan.length ? ' (a stage after one that runs counts as running)' : ''),
  );
  const total = estimates.reduce((s, e) => s + (e.seconds ?? 0), 0);
  console.log(
    `estimated compute on this backend: ${hours(total)} (stages without an estimate take seconds to minutes)`,
  );
}
