/**
 * `node --import tsx bench/step-fingerprint.ts [--steps N] [--modes eager,graph,xla]`: does a change move any
 * number of training? Runs N steps of the miniature's three trained models (SMOKE_STEPS, seed 0, batch 8) in each
 * mode and prints each run's losses and a sha256 of the losses and every weight after the last step. Run it in two
 * checkouts (a refactor and the commit before it) and compare the lines: equal hashes mean bit-identical training in
 * that mode. Hashes depend on the backend, thread count and TensorFlow build, so compare runs on one machine.
 */
import { createHash } from 'node:crypto';
import { initCompute } from '../lib/compute/backend.js';
import type { CompileMode } from '../lib/compute/compile-modes.js';
import { countFlag, modesFlag, readFlags } from './flags.js';
import { SMOKE_STEPS } from './model-steps.js';

function parseArgs(argv: string[]): { steps: number; modes: CompileMode[] } {
  const flags = readFlags(argv, ['--steps', '--modes'], '--steps N, --modes eager,graph,xla');
  return { steps: countFlag(flags, '--steps', 6), modes: modesFlag(flags) };
}

const { steps, modes } = parseArgs(process.argv.slice(2));
const provenance = await initCompute();
console.log(`backend ${provenance.backend}, ${provenance.threads} threads; ${steps} steps, seed 0, batch 8`);
for (const [model, build] of Object.entries(SMOKE_STEPS)) {
  for (const mode of modes) {
    const s = build(8, 0);
    try {
      const step = s.stepper(mode);
      const losses = Float64Array.from({ length: steps }, () => step());
      const hash = createHash('sha256').update(new Uint8Array(losses.buffer));
      for (const v of s.params.values()) hash.update(new Uint8Array(v.dataSync().buffer));
      const shown = [...losses].map((l) => l.toPrecision(9)).join(' ');
      console.log(`${model.padEnd(8)} ${mode.padEnd(6)} ${hash.digest('hex').slice(0, 16)}  losses ${shown}`);
    } finally {
      s.dispose();
    }
  }
}
