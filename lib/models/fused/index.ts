/**
 * The fused ops the training models run, each beside its plain twin: one table. A model takes one of the two
 * sets (fused by default); test/fused-ops.test.ts checks every entry's forward and gradients against its twin,
 * and `npm run bench -- --only fused-ops` times each model's compiled step with either set.
 */
import { layerNormFused, layerNormPlain, preLnBlock, preLnBlockPlain } from './encoder-block.js';

export type { BlockParams, BlockShape } from './encoder-block.js';

export interface OpSet {
  preLnBlock: typeof preLnBlock;
  layerNorm: typeof layerNormFused;
}

export const OP_SETS = {
  fused: { preLnBlock, layerNorm: layerNormFused },
  plain: { preLnBlock: preLnBlockPlain, layerNorm: layerNormPlain },
} as const satisfies Record<string, OpSet>;
