/**
 * `lea ridge --x X.npy --y Y.npy --alpha A [--fit-intercept] --out DIR [--predict X2.npy]`: fits
 * scikit-learn-equivalent ridge regression and writes coef.npy [n_features, n_targets], intercept.npy
 * [n_targets] (zeros without --fit-intercept) and, with --predict, pred.npy = X2·coef + intercept, all float64.
 * A 1-D --y is one target.
 */
import type { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { matFromNdArray, type Mat } from '../../lib/alignment/matrix.js';
import { fitRidge, predictRidge } from '../../lib/alignment/ridge.js';
import { initCompute } from '../../lib/compute/backend.js';
import { BadInputError } from '../../lib/errors.js';
import { outputFolder } from '../args.js';
import { ndarray } from '../../lib/tensors/ndarray.js';
import { readNpy, writeNpy } from '../../lib/tensors/npy.js';

interface RidgeFlags {
  x: string;
  y: string;
  alpha: string;
  fitIntercept?: boolean;
  out: string;
  predict?: string;
}

async function loadMatrix(path: string, flag: string): Promise<Mat> {
  return matFromNdArray(await readNpy(path), `${flag} ${path}`);
}

export function registerRidgeCommand(program: Command): void {
  program
    .command('ridge')
    .description('fit multi-output ridge regression Y ≈ X·coef + intercept (scikit-learn Ridge, float64)')
    .requiredOption('--x <path>', 'training inputs, .npy [n_samples, n_features]')
    .requiredOption('--y <path>', 'training targets, .npy [n_samples] or [n_samples, n_targets]')
    .requiredOption('--alpha <number>', 'ridge penalty, >= 0 (the paper uses 500)')
    .option('--fit-intercept', 'centre X and Y on their means and fit an intercept')
    .requiredOption(
      '--out <dir>',
      'directory for coef.npy and intercept.npy (created if missing)',
      outputFolder,
    )
    .option('--predict <path>', 'inputs to predict, .npy [m, n_features]; writes pred.npy')
    .action(async (flags: RidgeFlags) => {
      const alpha = Number(flags.alpha);
      if (flags.alpha.trim() === '' || !Number.isFinite(alpha) || alpha < 0) {
        throw new BadInputError(`--alpha must be a finite number >= 0, got '${flags.alpha}'`);
      }
      const x = await loadMatrix(flags.x, '--x');
      const y = await loadMatrix(flags.y, '--y');
      if (x.rows !== y.rows) throw new BadInputError(`--x has ${x.rows} samples but --y has ${y.rows}`);
      const x2 = flags.predict === undefined ? undefined : await loadMatrix(flags.predict, '--predict');
      if (x2 && x2.cols !== x.cols) {
        throw new BadInputError(`--predict has ${x2.cols} features but --x has ${x.cols}`);
      }
      await initCompute();
      const model = await fitRidge(x, y, { alpha, fitIntercept: flags.fitIntercept === true });
      await mkdir(flags.out, { recursive: true });
      const written = [join(flags.out, 'coef.npy'), join(flags.out, 'intercept.npy')];
      await writeNpy(written[0]!, ndarray('float64', [model.coef.rows, model.coef.cols], model.coef.data));
      await writeNpy(written[1]!, ndarray('float64', [model.intercept.length], model.intercept));
      if (x2) {
        const pred = await predictRidge(model, x2);
        written.push(join(flags.out, 'pred.npy'));
        await writeNpy(written[2]!, ndarray('float64', [pred.rows, pred.cols], pred.data));
      }
      const solve = x.cols > x.rows ? 'dual' : 'primal';
      console.log(
        `ridge: ${x.rows} samples x ${x.cols} features -> ${y.cols} targets, alpha ${alpha}, ` +
          `${flags.fitIntercept ? 'with' : 'no'} intercept, ${solve} solve; wrote ${written.join(', ')}`,
      );
    });
}
