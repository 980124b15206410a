/** `lea config schema|validate`. */
import type { Command } from 'commander';
import { experimentJsonSchema, loadExperimentConfig } from '../../lib/config/experiment.js';

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
    .description('check a config file; prints the resolved config on success')
    .argument('<file>', 'YAML or JSON config')
    .option('--set <key=value...>', 'override a field (repeatable)', [])
    .action((file: string, opts: { set: string[] }) => {
      const cfg = loadExperimentConfig(file, opts.set);
      console.log(JSON.stringify(cfg, null, 2));
    });
}
