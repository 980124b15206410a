/**
 * Whether imported weights fit the config that names them: the architecture stored in the weights' record
 * (read from the file's shapes at import) against the config's sections. Pure: the submit-time check (before a
 * run starts) and the stages (before they use the weights) ask the same question.
 */
import type { ReproductionConfig } from '../config/reproduction.js';
import type { WeightsRecord } from '../models/types.js';

/** One use of imported weights by a config: where it is named and which kind it must be. */
export interface WeightsUse {
  field: string;
  name: string;
  kind: string;
}

/** `field a (imported: b)` for each key whose values differ. */
export function architectureMismatch(
  expected: Record<string, unknown>,
  imported: Record<string, unknown>,
  keys: readonly string[],
): string[] {
  return keys
    .filter((k) => JSON.stringify(expected[k]) !== JSON.stringify(imported[k]))
    .map((k) => `${k} ${JSON.stringify(expected[k])} (imported: ${JSON.stringify(imported[k])})`);
}

export const TOKENIZER_KEYS = [
  'chBase',
  'chMult',
  'numResBlocks',
  'numResMids',
  'chLatent',
  'codes',
  'groups',
  'numerics',
];

/**
 * The architecture a weights record stores. MaskGIT weights imported before `--numerics` existed (mapping
 * version 1) name none: they were imported with LEA's numerics, the only ones there were.
 */
export function importedArchitecture(rec: WeightsRecord): Record<string, unknown> {
  return rec.kind.startsWith('maskgit-') ? { numerics: 'lea-port', ...rec.config } : rec.config;
}

/** What does not fit, as readable lines naming the config field (empty when the weights fit). */
export function weightsMisfit(cfg: ReproductionConfig, use: WeightsUse, rec: WeightsRecord): string[] {
  const { models, training } = cfg;
  const c = importedArchitecture(rec);
  const wrong = (lines: string[]) =>
    lines.length ? [`${use.field}: weights '${use.name}' do not fit the config: ${lines.join(', ')}`] : [];
  switch (use.field) {
    case 'models.imageFeatures.weights':
      return wrong(architectureMismatch({ outDim: models.imageFeatures.dim }, c, ['outDim']));
    case 'models.tokenizer.weights':
      return wrong(architectureMismatch(models.tokenizer, c, TOKENIZER_KEYS));
    case 'models.maskgit.initFrom': {
      const expected = { ...models.maskgit, codes: models.tokenizer.codes };
      return wrong(
        architectureMismatch(expected, c, [
          'classSlots',
          'width',
          'depth',
          'heads',
          'mlpHidden',
          'codes',
          'numerics',
        ]),
      );
    }
    case 'training.mae.initFrom':
      // the autoencoder takes the MAE's blocks by name and shape: encoders of one size, or nothing transfers
      return training.fmriAe.initFrom === 'mae'
        ? wrong(architectureMismatch(models.fmriAe, c, ['width', 'depth', 'mlpRatio']))
        : [];
    default:
      return [];
  }
}
