/**
 * What a config starts: the workflow type and its input. Building it is the one submit-time validation of
 * everything a run will read (config, stage plan, dataset manifest, baseline): `lea run`, `lea schedule create`
 * and `lea config validate` all call startSpec before anything is started, so they accept and refuse the same.
 */
import { readFileSync } from 'node:fs';
import type { ExperimentConfig } from '../lib/config/experiment.js';
import { taskQueue, type InfraSettings } from '../lib/config/infra.js';
import { loadDatasetManifest, resolveFiles } from '../lib/data/download.js';
import { BadInputError } from '../lib/errors.js';
import { buildPlan } from '../lib/pipeline/plan.js';
import { parseBaseline } from '../lib/pipeline/regression.js';
import { checkPlan } from '../lib/pipeline/run-record.js';
import { codeVersion } from '../workers/code-version.js';
import type { ReproductionInput } from '../workflows/reproduction.js';

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

export function startSpec(cfg: ExperimentConfig, settings: InfraSettings, opts: StartOptions): StartSpec {
  const memo = { config: opts.configFile, name: cfg.name, pipeline: cfg.pipeline };
  switch (cfg.pipeline) {
    case 'hello':
      return { workflowType: 'helloWorkflow', args: [{ ...cfg.hello, seed: cfg.seed }], memo };
    case 'reproduction': {
      const src = cfg.data.source;
      let manifestText: string | undefined;
      if (src.kind === 'fetch') {
        manifestText = readText(src.manifest, 'dataset manifest');
        // The fetch stage reads it on a worker; a mistake found there would cost a started run.
        resolveFiles(loadDatasetManifest(src.manifest, manifestText), src.manifest, src.baseUrl);
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
      // The verdict reads the baseline after the whole pipeline: parse it now, so a bad one never starts a run.
      const baseline = opts.baselineFile
        ? { source: opts.baselineFile, text: readText(opts.baselineFile, 'baseline') }
        : undefined;
      if (baseline) parseBaseline(baseline.text, baseline.source);
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
      return { workflowType: 'reproductionWorkflow', args: [input], memo };
    }
  }
}
