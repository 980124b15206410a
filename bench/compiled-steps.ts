/**
 * `node --import tsx bench/compiled-steps.ts [--size paper|smoke] [--modes xla,graph,eager] [--steps N]`: one
 * training step of each stage a paper run trains (the fMRI autoencoder, MaskGIT; batch 8, the paper's AdamW
 * settings: bench/model-steps.ts) in each compile mode on whatever backend loads: the backend and device, each
 * mode's first call (where XLA compiles) and steady-state step time. scripts/gpu-check.sh runs it on a GPU
 * machine; with XLA_FLAGS=--xla_dump_to=DIR TensorFlow also writes each compiled step's HLO modules there.
 * Prints a table and writes JSON to bench/results/ (or $OUT when set).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { initCompute } from '../lib/compute/backend.js';
import type { CompileMode } from '../lib/compute/compile-modes.js';
import { paperAeConfig, paperMaskGitConfig } from '../test/helpers/paper.js';
import { countFlag, modesFlag, readFlags } from './flags.js';
import { SMOKE_STEPS, aeStep, maskGitStep, type ModelStep } from './model-steps.js';

function args(argv: string[]): { size: 'paper' | 'smoke'; modes: CompileMode[]; steps: number } {
  const flags = readFlags(
    argv,
    ['--size', '--modes', '--steps'],
    '--size paper|smoke, --modes xla,graph,eager, --steps N',
  );
  const size = flags.get('--size') ?? 'paper';
  if (size !== 'paper' && size !== 'smoke') throw new Error(`--size must be paper or smoke, got ${size}`);
  return { size, modes: modesFlag(flags), steps: countFlag(flags, '--steps', 5) };
}

const { size, modes, steps } = args(process.argv.slice(2));
const provenance = await initCompute();
const BATCH = 8;
const models: Record<string, () => ModelStep> =
  size === 'paper'
    ? {
        'fmri-ae': () => aeStep(paperAeConfig(), BATCH),
        maskgit: () => maskGitStep(paperMaskGitConfig(), BATCH),
      }
    : {
        'fmri-ae': () => SMOKE_STEPS['fmri-ae'](BATCH),
        maskgit: () => SMOKE_STEPS.maskgit(BATCH),
      };

console.log(
  `backend ${provenance.backend} (${provenance.choice}), device ${provenance.device}, ${provenance.threads} threads, ` +
    `libtensorflow ${provenance.versions.libtensorflow ?? 'none'}; ${size} size, batch ${BATCH}`,
);
const rows = [];
for (const [stage, build] of Object.entries(models)) {
  for (const mode of modes) {
    const s = build();
    try {
      const step = s.stepper(mode);
      let t0 = performance.now();
      step();
      const firstCallSeconds = (performance.now() - t0) / 1000;
      const seconds: number[] = [];
      for (let i = 0; i < steps; i++) {
        t0 = performance.now();
        step();
        seconds.push((performance.now() - t0) / 1000);
      }
      seconds.sort((a, b) => a - b);
      const median = seconds[seconds.length >> 1] as number;
      rows.push({ stage, mode, firstCallSeconds, medianSeconds: median, seconds });
      console.log(
        `${stage.padEnd(8)} ${mode.padEnd(6)} first call ${firstCallSeconds.toFixed(3)} s (trace and compile), ` +
          `then ${median.toFixed(4)} s per step (median of ${steps})`,
      );
    } finally {
      s.dispose();
    }
  }
}
const dir = process.env.OUT ?? 'bench/results';
mkdirSync(dir, { recursive: true });
const file = `${dir}/compiled-steps-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
writeFileSync(file, JSON.stringify({ provenance, size, batch: BATCH, rows }, null, 2));
console.log(`wrote ${file}`);
