/**
 * `npm run bench -- --only fused-ops [--rounds N]` (or `node --import tsx bench/fused-ops.ts [--rounds N]
 * [--modes xla,graph,eager]`): are the fused ops (lib/models/fused/: the pre-LN encoder block and its layer norm)
 * still worth their hand-written backward? The training steps of the two models that use them
 * (bench/model-steps.ts: the MAE and the fMRI autoencoder, at the miniature's size and at width 128 / depth 4) are
 * timed in each compile mode with each of OP_SETS (fused, plain). The two alternate round by round; a row's figure
 * is the median over rounds of its mean step time, and its ratio to the fused step of the same mode (above 1: the
 * fused ops save that much). Prints a table and writes JSON to bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { initCompute } from '../lib/compute/backend.js';
import type { CompileMode } from '../lib/compute/compile-modes.js';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import type { FmriAeConfig } from '../lib/models/fmri-autoencoder.js';
import { OP_SETS, type OpSet } from '../lib/models/fused/index.js';
import type { MaeConfig } from '../lib/models/mae.js';
import { fmriAeConfig } from '../lib/train/stages/fmri-ae.js';
import { maeConfig } from '../lib/train/stages/mae.js';
import { countFlag, modesFlag, readFlags } from './flags.js';
import { aeStep, maeStep, type ModelStep } from './model-steps.js';

const smoke = loadExperimentConfig('configs/smoke.yaml') as ReproductionConfig;
const rois = smoke.data.roiPatch as number[];
const voxels = rois.reduce((a, b) => a + b, 0);
const mid = {
  width: 128,
  depth: 4,
  heads: 8,
  mlpRatio: 1,
  decoderWidth: 128,
  decoderDepth: 4,
  decoderHeads: 8,
};
const midMae: MaeConfig = { ...maeConfig(smoke), ...mid };
const midAe: FmriAeConfig = { ...fmriAeConfig(smoke, rois), ...mid, tokensPerRoi: 8, latent: 128 };

interface StepCase {
  name: string;
  batch: number;
  build: (ops: OpSet) => ModelStep;
}
const CASES: StepCase[] = [
  {
    name: 'MAE, smoke',
    batch: 32,
    build: (ops) => maeStep(maeConfig(smoke), smoke.data.patchPadding, voxels, 32, 0, ops),
  },
  {
    name: 'MAE, width 128, depth 4',
    batch: 16,
    build: (ops) => maeStep(midMae, smoke.data.patchPadding, 4 * voxels, 16, 0, ops),
  },
  {
    name: 'fMRI autoencoder, smoke',
    batch: 32,
    build: (ops) => aeStep(fmriAeConfig(smoke, rois), 32, 0, ops),
  },
  {
    name: 'fMRI autoencoder, width 128, depth 4',
    batch: 16,
    build: (ops) => aeStep(midAe, 16, 0, ops),
  },
];

function parseArgs(argv: string[]): { rounds: number; modes: CompileMode[] } {
  const flags = readFlags(argv, ['--rounds', '--modes'], '--rounds N, --modes xla,graph,eager');
  return { rounds: countFlag(flags, '--rounds', 3), modes: modesFlag(flags) };
}

/** Mean seconds per step over `steps` steps. */
function timeSteps(step: () => number, steps: number): number {
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) step();
  return (performance.now() - t0) / 1000 / steps;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;

const { rounds, modes } = parseArgs(process.argv.slice(2));
const provenance = await initCompute();
console.log(
  `backend ${provenance.backend} (${provenance.choice}), ${provenance.threads} threads; ${rounds} rounds`,
);
const rows = [];
for (const c of CASES) {
  for (const mode of modes) {
    const runs = Object.entries(OP_SETS).map(([variant, ops]) => {
      const s = c.build(ops);
      const step = s.stepper(mode);
      const t0 = performance.now();
      step(); // the first call traces and compiles
      const firstCall = (performance.now() - t0) / 1000;
      // about a second of steps per round
      const steps = Math.max(3, Math.min(40, Math.round(1 / timeSteps(step, 2))));
      return { variant, s, step, firstCall, steps, means: [] as number[] };
    });
    for (let r = 0; r < rounds; r++) for (const run of runs) run.means.push(timeSteps(run.step, run.steps));
    const base = median(runs[0]?.means ?? []);
    for (const { variant, s, firstCall, steps, means } of runs) {
      s.dispose();
      const seconds = median(means);
      rows.push({
        case: c.name,
        batch: c.batch,
        mode,
        variant,
        seconds,
        ratio: seconds / base,
        firstCall,
        steps,
        means,
      });
      console.log(
        `${c.name.padEnd(38)} ${mode.padEnd(6)} ${variant.padEnd(22)} ${(seconds * 1000).toFixed(1).padStart(8)} ms ` +
          `${(seconds / base).toFixed(2)}x  (first call ${firstCall.toFixed(1)} s; ${rounds} x ${steps} steps)`,
      );
    }
  }
}
const dir = 'bench/results';
mkdirSync(dir, { recursive: true });
const file = `${dir}/fused-ops-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify({ provenance, rounds, rows }, null, 2));
console.log(`wrote ${file}`);
