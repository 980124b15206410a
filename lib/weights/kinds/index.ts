/** The table of upstream network kinds `lea weights import --kind` accepts: one entry per kind. */
import { BadInputError } from '../../errors.js';
import type { WeightKind } from '../kind.js';
import { fidInceptionV3Kind } from './fid-inception-v3.js';
import { lpipsAlexKind } from './lpips-alex.js';
import { maskgitTokenizerKind } from './maskgit-tokenizer.js';
import { maskgitTransformerKind } from './maskgit-transformer.js';
import { mindvisMaeKind } from './mindvis-mae.js';
import { openclipVitH14Kind } from './openclip-vit-h14.js';
import { torchvisionAlexnetKind } from './torchvision-alexnet.js';
import { torchvisionVitH14Kind } from './torchvision-vit-h14.js';

export const WEIGHT_KINDS: ReadonlyMap<string, WeightKind> = new Map(
  [
    maskgitTokenizerKind,
    maskgitTransformerKind,
    openclipVitH14Kind,
    torchvisionVitH14Kind,
    mindvisMaeKind,
    torchvisionAlexnetKind,
    lpipsAlexKind,
    fidInceptionV3Kind,
  ].map((k) => [k.name, k]),
);

export function weightKind(name: string): WeightKind {
  const kind = WEIGHT_KINDS.get(name);
  if (!kind) {
    throw new BadInputError(`unknown weights kind '${name}': one of ${[...WEIGHT_KINDS.keys()].join(', ')}`);
  }
  return kind;
}
