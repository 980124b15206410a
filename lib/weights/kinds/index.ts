/** The table of upstream network kinds `lea weights import --kind` accepts: one entry per kind. */
import { BadInputError } from '../../errors.js';
import type { WeightKind } from '../kind.js';
import { mindvisMaeKind } from './mindvis-mae.js';

export const WEIGHT_KINDS: ReadonlyMap<string, WeightKind> = new Map(
  [mindvisMaeKind].map((k) => [k.name, k]),
);

export function weightKind(name: string): WeightKind {
  const kind = WEIGHT_KINDS.get(name);
  if (!kind) {
    throw new BadInputError(`unknown weights kind '${name}': one of ${[...WEIGHT_KINDS.keys()].join(', ')}`);
  }
  return kind;
}
