/**
 * What a config starts: the workflow type and its input. Building it is the one submit-time validation of
 * everything a run will read (config, stage plan, dataset manifest, baseline): `lea run`, `lea schedule create`
 * and `lea config validate` all call startSpec before anything is started, so they accept and refuse the same.
 */
import type { Client } from '@temporalio/client';
import { completedResult } from '../activities/judge.js';
import { readFileSync } from 'node:fs';
import { loadExperimentConfig, type ExperimentConfig } from '../lib/config/experiment.js';
import { taskQueue, type InfraSettings } from '../lib/config/infra.js';
import { upstreamChoices } from '../lib/config/upstream-choices.js';
import { readDatasetManifest, resolveFiles } from '../lib/data/download.js';
import { BadInputError } from '../lib/errors.js';
import { buildPlan, weightsUses } from '../lib/pipeline/plan.js';
import { weightsMisfit } from '../lib/pipeline/weights-fit.js';
import { ArtifactStore } from '../lib/storage/artifact-store.js';
import { ensureServers } from './context.js';
import { missingWeights, weightsRecord } from '../lib/weights/import.js';
import { parseBaseline } from '../lib/pipeline/regression.js';
import { checkPlan } from '../lib/pipeline/run-record.js';
import { codeVersion } from '../workers/code-version.js';
import type { ReproductionInput } from '../workflows/reproduction.js';
import type { SuiteInput } from '../workflows/suite.js';
import { seedMembers, suiteName } from '../lib/pipeline/suite.js';
import { pointOverrides, type SweepPlan } from '../lib/pipeline/sweep.js';

export interface StartSpec {
  workflowType: string;
  args: unknown[];
  memo: Record<string, unknown>;
}

export interface StartOptions {
  configFile: string;
  /** Stages to recompute although cached (and everything downstream). */
  force?: string[];
  /** A baseline file for a regression verdict. */
  baselineFile?: string;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BadInputError(`${what} ${file}: cannot read (${(err as NodeJS.ErrnoException).code})`);
  }
}

/**
 * Every imported network the config names is there, of the kind the field needs and of the config's
 * architecture (a run would otherwise fail at the stage that reads it, hours in). Reads only manifests.
 */
export async function checkWeights(cfg: ExperimentConfig, settings: InfraSettings): Promise<void> {
  if (cfg.pipeline !== 'reproduction') return;
  const uses = weightsUses(cfg);
  if (uses.length === 0) return;
  await ensureServers(settings);
  const store = ArtifactStore.fromSettings(settings.s3);
  const problems: string[] = [];
  try {
    for (const use of uses) {
      const rec = await weightsRecord(store, use.name);
      if (!rec) problems.push(`${use.field}: ${missingWeights(use.name, use.kind)}`);
      else if (rec.kind !== use.kind)
        problems.push(`${use.field}: weights '${use.name}' are ${rec.kind}, not ${use.kind}`);
      else problems.push(...weightsMisfit(cfg, use, rec));
    }
  } finally {
    store.s3.destroy();
  }
  if (problems.length) throw new BadInputError(problems.join('; '));
}

/** The verdict reads the baseline after the whole pipeline: it is parsed now, so a bad one never starts a run. */
function readBaseline(file: string | undefined): { source: string; text: string } | undefined {
  if (!file) return undefined;
  const baseline = { source: file, text: readText(file, 'baseline') };
  parseBaseline(baseline.text, baseline.source);
  return baseline;
}

/** `--seeds N`: each reproduction config as a seed suite of seeds seed, seed+1, ..., seed+N-1. */
export function withSeeds(cfgs: ExperimentConfig[], configFiles: string[], n: number): ExperimentConfig[] {
  return cfgs.map((cfg, i) => {
    if (cfg.pipeline !== 'reproduction')
      throw new BadInputError(`--seeds: ${configFiles[i]} is a '${cfg.pipeline}' config, not a reproduction`);
    return { ...cfg, seeds: Array.from({ length: n }, (_, k) => cfg.seed + k) };
  });
}

/**
 * A baseline that pins a run compares with it when the run ends: it must exist and have completed now, or the
 * run would fail at its verdict, hours in.
 */
export async function checkPinnedRun(client: Client, baselineFile: string | undefined): Promise<void> {
  const baseline = readBaseline(baselineFile);
  const pinned = baseline && parseBaseline(baseline.text, baseline.source).run;
  if (pinned) await completedResult(client, pinned, `${baselineFile}: run ${pinned}`);
}

/** One config to start: its file, its seed in a seed suite and its point's label in a sweep. */
export interface ConfigEntry {
  cfg: ExperimentConfig;
  configFile: string;
  seed?: number;
  point?: string;
}

/** The configs given, a config with `seeds` expanded into one member per seed (lib/pipeline/suite.ts). */
export function configEntries(cfgs: ExperimentConfig[], configFiles: string[]): ConfigEntry[] {
  return cfgs.flatMap((cfg, i) => {
    const configFile = configFiles[i]!;
    if (cfg.pipeline !== 'reproduction' || !cfg.seeds) return [{ cfg, configFile }];
    return seedMembers(cfg).map((m) => ({ cfg: m, configFile, seed: m.samplingSeed ?? m.seed }));
  });
}

/**
 * What `lea run` and `lea schedule create` start: one config's run (`CONFIG-STAMP`), or for several configs or
 * seeds a suite (`suite-STAMP`).
 */
export function runSpec(
  cfgs: ExperimentConfig[],
  configFiles: string[],
  settings: InfraSettings,
  opts: Omit<StartOptions, 'configFile'>,
  stamp: string,
): StartSpec & { runId: string } {
  const entries = configEntries(cfgs, configFiles);
  if (entries.length > 1 || entries[0]!.seed !== undefined) return suiteSpec(entries, settings, opts, stamp);
  const { cfg, configFile } = entries[0]!;
  return { ...startSpec(cfg, settings, { ...opts, configFile }), runId: `${cfg.name}-${stamp}` };
}

/**
 * A suite of reproduction configs (workflows/suite.ts): each member checked as `lea run` checks one config; the
 * baseline judges their mean. Its run id is `suite-STAMP`, its runs' `CONFIG-STAMP` (memberRunId).
 */
export function suiteSpec(
  entries: ConfigEntry[],
  settings: InfraSettings,
  opts: Omit<StartOptions, 'configFile'>,
  stamp: string,
): StartSpec & { runId: string } {
  const names = new Set<string>();
  for (const { cfg, configFile } of entries) {
    if (cfg.pipeline !== 'reproduction')
      throw new BadInputError(
        `${configFile}: a suite runs reproduction configs, not pipeline '${cfg.pipeline}'`,
      );
    if (names.has(cfg.name))
      throw new BadInputError(`${configFile}: two configs of the suite are named '${cfg.name}'`);
    names.add(cfg.name);
  }
  const members = entries.map(({ cfg, configFile, seed, point }): ReproductionInput => {
    const spec = startSpec(cfg, settings, { configFile, ...(opts.force ? { force: opts.force } : {}) });
    const choices = spec.memo.choices as Record<string, string>;
    return {
      ...(spec.args[0] as ReproductionInput),
      ...(seed === undefined ? {} : { seed }),
      ...(point === undefined ? {} : { point }),
      choices,
    };
  });
  const baseline = readBaseline(opts.baselineFile);
  const input: SuiteInput = {
    name: suiteName([...names]),
    codeVersion: codeVersion(),
    members,
    ...(baseline ? { baseline } : {}),
  };
  return {
    workflowType: 'suiteWorkflow',
    args: [input],
    memo: {
      config: [...new Set(entries.map((e) => e.configFile))].join(' '),
      name: input.name,
      pipeline: 'suite',
    },
    runId: `suite-${stamp}`,
  };
}

/**
 * A sweep (`lea sweep`): a suite whose members are the config under each point's overrides, applied after the
 * `--set` ones by the same parser, each named by its point (and expanded by seed, as `lea run --seeds` does). Its
 * run id is `sweep-STAMP`, its runs' `POINT-STAMP`.
 */
export function sweepSpec(
  configFile: string,
  overrides: string[],
  plan: SweepPlan,
  seeds: number | undefined,
  settings: InfraSettings,
  opts: Omit<StartOptions, 'configFile' | 'baselineFile'>,
  stamp: string,
): StartSpec & { runId: string; cfgs: ExperimentConfig[] } {
  const entries = plan.points.flatMap((p) => {
    let cfg: ExperimentConfig;
    try {
      cfg = loadExperimentConfig(configFile, [...overrides, ...pointOverrides(p)]);
    } catch (err) {
      if (err instanceof BadInputError) throw new BadInputError(`point ${p.label}: ${err.message}`);
      throw err;
    }
    if (cfg.pipeline !== 'reproduction')
      throw new BadInputError(
        `${configFile}: a sweep runs a reproduction config, not pipeline '${cfg.pipeline}'`,
      );
    const point = { ...cfg, name: p.name, sweep: undefined };
    const cfgs = seeds === undefined ? [point] : withSeeds([point], [configFile], seeds);
    return configEntries(cfgs, [configFile]).map((e) => ({ ...e, point: p.label }));
  });
  const spec = suiteSpec(entries, settings, opts, stamp);
  const input = spec.args[0] as SuiteInput;
  const name = `${plan.config}-sweep`;
  return {
    workflowType: spec.workflowType,
    args: [{ ...input, name, sweep: plan }],
    memo: { ...spec.memo, name, pipeline: 'sweep' },
    runId: `sweep-${stamp}`,
    cfgs: entries.map((e) => e.cfg),
  };
}

export function startSpec(cfg: ExperimentConfig, settings: InfraSettings, opts: StartOptions): StartSpec {
  const memo = { config: opts.configFile, name: cfg.name, pipeline: cfg.pipeline };
  switch (cfg.pipeline) {
    case 'hello':
      return { workflowType: 'helloWorkflow', args: [{ ...cfg.hello, seed: cfg.seed }], memo };
    case 'reproduction': {
      const src = cfg.data.source;
      let manifestText: string | undefined;
      if (src.kind === 'fetch') {
        // With its lock file's checksums filled in. The fetch stage reads it on a worker; a mistake found there
        // would cost a started run.
        const read = readDatasetManifest(src.manifest);
        manifestText = read.text;
        resolveFiles(read.manifest, src.manifest, src.baseUrl);
      }
      const plan = buildPlan(cfg, manifestText === undefined ? {} : { manifestText });
      const problem = checkPlan(plan);
      if (problem) throw new Error(`internal: invalid stage plan: ${problem}`);
      const unknown = (opts.force ?? []).filter((f) => !plan.some((s) => s.name === f));
      if (unknown.length) {
        throw new BadInputError(
          `--force: no stage ${unknown.join(', ')} (stages: ${plan.map((s) => s.name).join(', ')})`,
        );
      }
      const baseline = readBaseline(opts.baselineFile);
      const input: ReproductionInput = {
        configName: cfg.name,
        configFile: opts.configFile,
        dataset: cfg.data.dataset,
        subject: cfg.data.subject,
        codeVersion: codeVersion(),
        taskQueues: { cpu: taskQueue(settings, 'cpu'), gpu: taskQueue(settings, 'gpu') },
        plan,
        force: opts.force ?? [],
        metricsStage: 'metrics',
        ...(baseline ? { baseline } : {}),
      };
      return {
        workflowType: 'reproductionWorkflow',
        args: [input],
        memo: { ...memo, choices: upstreamChoices(cfg) },
      };
    }
  }
}
