/** `lea config schema|validate`. */
import type { Command } from 'commander';
import { experimentJsonSchema, loadExperimentConfig } from '../../lib/config/experiment.js';
import { settingsFromEnv } from '../context.js';
import { checkWeights, startSpec } from '../pipelines.js';

export function registerConfigCommands(program: Command): void {
  const config = program.command('config').description('experiment configs: JSON Schema and validation');

  config
    .command('schema')
    .description('print the experiment config JSON Schema (for editor completion)')
    .action(() => {
      console.log(JSON.stringify(experimentJsonSchema(), null, 2));
    });

  config
    .command('validate')
    .description(
      'check a config file as `lea run` does (with its dataset manifest and baseline); prints the resolved config',
    )
    .argument('<file>', 'YAML or JSON config')
    .option('--set <key=value...>', 'override a field (repeatable)', [])
    .option('--baseline <file>', 'also check this baseline file')
    .action(async (file: string, opts: { set: string[]; baseline?: string }) => {
      const cfg = loadExperimentConfig(file, opts.set);
      const settings = settingsFromEnv();
      startSpec(cfg, settings, { configFile: file, baselineFile: opts.baseline });
      await checkWeights(cfg, settings);
      console.log(JSON.stringify(cfg, null, 2));
    });
}
