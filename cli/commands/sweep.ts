/**
 * `lea sweep CONFIG --grid key=v1,v2 [--grid ...]`: the grid's points (or a seeded sample) started as one suite,
 * each the config with the point's values set as `--set` sets them; stages every point shares are computed
 * once. `lea status SWEEP` follows it point by point, `lea report SWEEP` is its comparison page and
 * `lea compare SWEEP` the same table in the terminal.
 */
import type { Command } from 'commander';
import { loadExperimentConfig } from '../../lib/config/experiment.js';
import type { SweepSection } from '../../lib/config/sweep.js';
import { BadInputError } from '../../lib/errors.js';
import {
  parseGridArg,
  parseMetricsArg,
  parsePointArg,
  sweepDefinition,
  sweepPlan,
} from '../../lib/pipeline/sweep.js';
import { positiveInt } from '../args.js';
import { settingsFromEnv } from '../context.js';
import { sweepSpec } from '../pipelines.js';
import { localWorkerOption, runStamp, startRun, type FollowOptions } from './run.js';

interface SweepOptions extends FollowOptions {
  grid: string[];
  sample?: number;
  seeds?: number;
  baselinePoint?: string;
  metrics?: string;
  set: string[];
  force: string[];
  list?: boolean;
}

/** The grid from `--grid` flags, a key at most once. */
function gridOf(args: string[]): SweepSection['grid'] | undefined {
  if (args.length === 0) return undefined;
  const grid: Record<string, unknown[]> = {};
  for (const arg of args) {
    const [key, values] = parseGridArg(arg);
    if (grid[key]) throw new BadInputError(`--grid ${key}: given twice`);
    grid[key] = values;
  }
  return grid as SweepSection['grid'];
}

export function registerSweepCommand(program: Command): void {
  program
    .command('sweep')
    .description(
      'run a config over a grid of overrides as one suite (shared stages computed once) and compare each point ' +
        'with the baseline point: `lea report SWEEP` is the page, `lea compare SWEEP` the table',
    )
    .argument('<config>', 'YAML or JSON reproduction config (its `sweep:` section, if any, is the default)')
    .option(
      '--grid <key=v1,v2,...>',
      'a swept config field and its values, each parsed as --set parses one (repeatable: every combination)',
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option(
      '--sample <k>',
      'run a seeded random sample of k points (the baseline point always among them)',
      positiveInt,
    )
    .option(
      '--seeds <n>',
      'run each point under n seeds (its seed, seed+1, ...); their scores pooled per point',
      positiveInt,
    )
    .option(
      '--baseline-point <key=value,...>',
      "the point the others are compared with (default: the one with the config's own values, else the first)",
    )
    .option(
      '--metrics <names>',
      'the family the correction runs over, comma-separated (default: every metric)',
    )
    .option('--set <key=value...>', 'override a config field for every point (repeatable)', [])
    .option('--force <stage...>', 'recompute these stages (and everything downstream) although cached', [])
    .option('--list', 'print the points and the baseline point; check and start nothing')
    .option('--wait', 'wait for every point to finish and print the record')
    .option('--json', 'print the run id, then (with --wait) the record as JSON')
    .option('--verbose', "with --wait, print the in-process worker's Temporal SDK log on stderr")
    .addOption(localWorkerOption())
    .action(async (configFile: string, opts: SweepOptions) => {
      const cfg = loadExperimentConfig(configFile, opts.set);
      if (cfg.pipeline !== 'reproduction')
        throw new BadInputError(
          `${configFile}: a sweep runs a reproduction config, not pipeline '${cfg.pipeline}'`,
        );
      const grid = gridOf(opts.grid);
      const def = sweepDefinition(cfg.sweep, {
        ...(grid ? { grid } : {}),
        ...(opts.sample !== undefined ? { sample: opts.sample } : {}),
        ...(opts.baselinePoint !== undefined
          ? { baselinePoint: parsePointArg(opts.baselinePoint) as SweepSection['baselinePoint'] }
          : {}),
        ...(opts.metrics !== undefined ? { metrics: parseMetricsArg(opts.metrics) } : {}),
      });
      const plan = sweepPlan(cfg.name, cfg, def);
      if (opts.list) {
        const points = plan.points.map((p) => ({ ...p, baseline: p.name === plan.baseline }));
        console.log(
          opts.json
            ? JSON.stringify({ keys: plan.keys, metrics: plan.metrics ?? null, points }, null, 2)
            : points.map((p) => `${p.name}  ${p.label}${p.baseline ? '  (baseline)' : ''}`).join('\n'),
        );
        return;
      }
      const settings = settingsFromEnv();
      const spec = sweepSpec(
        configFile,
        opts.set,
        plan,
        opts.seeds,
        settings,
        { force: opts.force },
        runStamp(),
      );
      await startRun(spec, spec.cfgs, settings, opts);
    });
}
