/**
 * `node --import tsx bench/ridge.ts [--rounds N] [--reps N]`: the paper's two ridge maps at their sizes
 * ([1200, 1024] → [1024] for GOD, [4803, 1024] → [1024] for BOLD5000, alpha 500, with and without an
 * intercept), lib/alignment/ridge.ts against scikit-learn's Ridge on the same float64 data, timed side by
 * side in one run: rounds alternate a batch of scikit-learn fits and a batch of ours, and the figures are
 * medians. Also prints the coefficient agreement. Target: at most scikit-learn's time (issue 21).
 *
 * scikit-learn runs from the test-oracle venv (.tools/oracle-venv), because bench/main.ts's reference venv has no
 * scikit-learn and its cases are synchronous; it is installed here as `npm test` does (LEA_SETUP_ORACLES=1
 * scripts/setup.sh: idempotent, a no-op once installed), so a fresh clone can run the benchmark.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mat, matFromNdArray, type Mat } from '../lib/alignment/matrix.js';
import { fitRidge } from '../lib/alignment/ridge.js';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { ndarray } from '../lib/tensors/ndarray.js';
import { readNpy, writeNpy } from '../lib/tensors/npy.js';

const python = fileURLToPath(new URL('../.tools/oracle-venv/bin/python', import.meta.url));

// One JSON request per stdin line: {"x", "y", "alpha", "fit_intercept", "reps", "coef"} → {"seconds": [...]}.
const SERVER = `
import json, sys, time, numpy as np, sklearn
from sklearn.linear_model import Ridge
from threadpoolctl import threadpool_info
print(json.dumps({"sklearn": sklearn.__version__, "numpy": np.__version__,
                  "blas": [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]}), flush=True)
for line in sys.stdin:
    r = json.loads(line)
    X, Y = np.load(r["x"]), np.load(r["y"])
    seconds = []
    for _ in range(r["reps"]):
        t0 = time.perf_counter()
        m = Ridge(alpha=r["alpha"], fit_intercept=r["fit_intercept"]).fit(X, Y)
        seconds.append(time.perf_counter() - t0)
    np.save(r["coef"], m.coef_.T)
    print(json.dumps({"seconds": seconds}), flush=True)
`;

const SHAPES = [
  { n: 1200, p: 1024, t: 1024 },
  { n: 4803, p: 1024, t: 1024 },
];
const ALPHA = 500;
const TARGET_RATIO = 1;

function parseArgs(argv: string[]): { rounds: number; reps: number } {
  const out = { rounds: 3, reps: 3 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i] === '--rounds' ? 'rounds' : argv[i] === '--reps' ? 'reps' : undefined;
    const v = Number(argv[++i]);
    if (!key || !Number.isInteger(v) || v < 1)
      throw new Error('usage: bench/ridge.ts [--rounds N] [--reps N]');
    out[key] = v;
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function randomMat(rng: Rng, rows: number, cols: number, offset: number): Mat {
  return mat(
    rows,
    cols,
    Float64Array.from({ length: rows * cols }, () => rng.normal(offset, 1)),
  );
}

function maxRelErr(ours: Mat, ref: Mat): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.data.length; i++) {
    err = Math.max(err, Math.abs(ours.data[i]! - ref.data[i]!));
    scale = Math.max(scale, Math.abs(ref.data[i]!));
  }
  return err / scale;
}

async function main(): Promise<void> {
  const { rounds, reps } = parseArgs(process.argv.slice(2));
  // setup's own output goes to stderr: stdout carries the figures.
  execFileSync('bash', [fileURLToPath(new URL('../scripts/setup.sh', import.meta.url))], {
    env: { ...process.env, LEA_SETUP_ORACLES: '1' },
    stdio: ['ignore', 2, 'inherit'],
  });
  const provenance = await initCompute();
  const child = spawn(python, ['-c', SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async <T>(): Promise<T> => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`scikit-learn process exited (is ${python} installed?)`);
    return JSON.parse(value) as T;
  };
  const info = await next<{ sklearn: string; numpy: string; blas: [string, number][] }>();
  console.log(
    `${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown'}); ours: tfjs ${provenance.backend}, ` +
      `${provenance.threads} threads; scikit-learn ${info.sklearn}, numpy ${info.numpy}, ` +
      `BLAS ${info.blas.map(([api, n]) => `${api} x${n}`).join(', ')}`,
  );
  const dir = await mkdtemp(join(os.tmpdir(), 'lea-bench-ridge-'));
  const rows: string[] = [];
  try {
    for (const { n, p, t } of SHAPES) {
      const rng = new Rng(0, `bench-ridge-${n}`);
      const x = randomMat(rng, n, p, 0.5);
      const y = randomMat(rng, n, t, -0.2);
      const xPath = join(dir, 'x.npy');
      const yPath = join(dir, 'y.npy');
      await writeNpy(xPath, ndarray('float64', [n, p], x.data));
      await writeNpy(yPath, ndarray('float64', [n, t], y.data));
      for (const fitIntercept of [false, true]) {
        const coefPath = join(dir, 'coef.npy');
        const refSec: number[] = [];
        const ourSec: number[] = [];
        let coef = x;
        await fitRidge(x, y, { alpha: ALPHA, fitIntercept }); // warm-up: kernels, allocations
        for (let r = 0; r < rounds; r++) {
          child.stdin.write(
            `${JSON.stringify({ x: xPath, y: yPath, alpha: ALPHA, fit_intercept: fitIntercept, reps, coef: coefPath })}\n`,
          );
          refSec.push(...(await next<{ seconds: number[] }>()).seconds);
          for (let i = 0; i < reps; i++) {
            const t0 = performance.now();
            coef = (await fitRidge(x, y, { alpha: ALPHA, fitIntercept })).coef;
            ourSec.push((performance.now() - t0) / 1e3);
          }
        }
        const err = maxRelErr(coef, matFromNdArray(await readNpy(coefPath), 'scikit-learn coef'));
        const [o, s] = [median(ourSec), median(refSec)];
        const met = o / s <= TARGET_RATIO;
        rows.push(
          `[${n}, ${p}] -> [${t}]`.padEnd(24) +
            `${String(fitIntercept).padEnd(9)} ${(o * 1e3).toFixed(0).padStart(9)} ${(s * 1e3).toFixed(0).padStart(9)}` +
            `${(o / s).toFixed(2).padStart(8)}x  ${met ? 'met' : 'NOT met'}   ${err.toExponential(1)}`,
        );
      }
    }
  } finally {
    child.stdin.end();
    await rm(dir, { recursive: true, force: true });
  }
  console.log(
    `alpha ${ALPHA}; medians of ${rounds} rounds x ${reps} fits; target <= ${TARGET_RATIO}x scikit-learn`,
  );
  console.log(`${'shape'.padEnd(24)}intercept  ours(ms)  sklearn(ms)  ratio  target  max|Δcoef|/max|coef|`);
  for (const r of rows) console.log(r);
}

await main();
