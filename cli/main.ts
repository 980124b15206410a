/**
 * The `lea` command. Each command group lives in cli/commands/<group>.ts and exports a register function;
 * errors are printed as one clear line (BadInputError and commander's usage errors exit 2, others 1).
 */
import { Command, CommanderError } from 'commander';
import { BadInputError, causeChain } from '../lib/errors.js';
import { registerCompareCommand } from './commands/compare.js';
import { registerConfigCommands } from './commands/config.js';
import { registerDataCommands } from './commands/data.js';
import { registerDevCommands } from './commands/dev.js';
import { registerExportCommand } from './commands/export.js';
import { registerGcCommand } from './commands/gc.js';
import { registerMetricsCommand } from './commands/metrics.js';
import { registerReportCommand } from './commands/report.js';
import { registerRidgeCommand } from './commands/ridge.js';
import { registerRunCommand } from './commands/run.js';
import { registerRunsCommands } from './commands/runs.js';
import { registerScheduleCommands } from './commands/schedule.js';
import { registerSweepCommand } from './commands/sweep.js';
import { registerTensorboardCommand } from './commands/tensorboard.js';
import { registerTrainCommand } from './commands/train.js';
import { registerWeightsCommands } from './commands/weights.js';
import { registerWorkerCommand } from './commands/worker.js';

export function buildProgram(): Command {
  const program = new Command('lea')
    .description('Reproduce LEA (fMRI decoding and encoding) as a resumable Temporal + S3 pipeline')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerDevCommands(program);
  registerConfigCommands(program);
  registerRunCommand(program);
  registerSweepCommand(program);
  registerRunsCommands(program);
  registerScheduleCommands(program);
  registerDataCommands(program);
  registerRidgeCommand(program);
  registerMetricsCommand(program);
  registerReportCommand(program);
  registerCompareCommand(program);
  registerTensorboardCommand(program);
  registerExportCommand(program);
  registerTrainCommand(program);
  registerWeightsCommands(program);
  registerWorkerCommand(program);
  registerGcCommand(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return Number(process.exitCode ?? 0); // a command may have set a non-zero status without throwing
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message ("unknown option '--x'", "--help" output, ...)
      return err.exitCode === 0 ? 0 : 2;
    }
    console.error(`lea: ${causeChain(err)}`);
    return err instanceof BadInputError ? 2 : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
