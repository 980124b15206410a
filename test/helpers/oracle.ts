/**
 * Runs an independent Python reference (numpy, scipy, scikit-learn, scikit-image) from the oracle venv
 * that scripts/test.sh installs (tools/requirements-oracles.txt). Tests only; never used at run time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const oraclePython = fileURLToPath(new URL('../../.tools/oracle-venv/bin/python', import.meta.url));

/** Runs `code` with the oracle interpreter; extra args land in sys.argv[1:]. Returns stdout. */
export function runOracle(code: string, args: string[] = []): string {
  if (!existsSync(oraclePython)) {
    throw new Error(`oracle venv missing at ${oraclePython}: run LEA_SETUP_ORACLES=1 npm run setup`);
  }
  return execFileSync(oraclePython, ['-c', code, ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
}

/**
 * Runs the oracle script at `path` as `python path args` would (its folder on sys.path, so it imports its
 * neighbours in test/oracles). Returns stdout.
 */
export function runOracleFile(path: string, args: string[] = []): string {
  const run =
    'import os, runpy, sys; sys.argv.pop(0); sys.path.insert(0, os.path.dirname(sys.argv[0])); ' +
    "runpy.run_path(sys.argv[0], run_name='__main__')";
  return runOracle(run, [path, ...args]);
}

/** The scalars of the TensorBoard event files in `dir`, as TensorBoard's EventAccumulator reads them. */
export function readEvents(dir: string): Record<string, [step: number, value: number, wallTime: number][]> {
  const script = fileURLToPath(new URL('../oracles/tensorboard_events.py', import.meta.url));
  return JSON.parse(runOracleFile(script, [dir])) as ReturnType<typeof readEvents>;
}
