/**
 * The numerical choices where the authors' code and ours differ (lib/config/upstream-choices.ts): each is
 * validated by the config schema, named in the run record's choices, and enters the cache keys of exactly the
 * stages that compute with it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { ReproductionConfig } from '../lib/config/reproduction.js';
import { UPSTREAM_CHOICES, upstreamChoices } from '../lib/config/upstream-choices.js';
import { BadInputError } from '../lib/errors.js';
import { choiceCauses, stageDifferences, type StageProvenance } from '../lib/pipeline/compare.js';
import { buildPlan } from '../lib/pipeline/plan.js';
import { repoRoot } from './helpers/lea.js';

/**
 * The smoke config with every choice off the authors' value (ours, or MaskGIT's Flax numerics), with the Inception network that makes
 * metrics.fidResize apply, the resize that makes data.imageResize apply and the VQGAN that makes
 * models.tokenizer.numerics apply.
 */
const smoke = (sets: string[] = []): ReproductionConfig => {
  const ours = [
    'metrics.inception=fid-inception',
    'metrics.fidResize=antialias',
    'data.imageSize=32',
    'data.imageResize=bicubic',
    'models.imageFeatures={"kind":"clip","weights":"clip","dim":32}',
    'data.clipInput=resized',
    'models.tokenizer={"kind":"vqgan","chBase":8,"chMult":[1,2],"numResBlocks":1,"numResMids":1,"chLatent":8,' +
      '"codes":32,"groups":4,"beta":0.25,"frozen":true,"weights":"vqgan","numerics":"maskgit-flax"}',
    'models.maskgit.numerics=maskgit-flax',
  ];
  const cfg = loadExperimentConfig(join(repoRoot, 'configs/smoke.yaml'), [...ours, ...sets]);
  assert.equal(cfg.pipeline, 'reproduction');
  return cfg as ReproductionConfig;
};

/** The plan stages whose config differs between two configs. */
function changedStages(a: ReproductionConfig, b: ReproductionConfig): string[] {
  const configs = new Map(buildPlan(a).map((s) => [s.name, JSON.stringify(s.config)]));
  return buildPlan(b)
    .filter((s) => configs.get(s.name) !== JSON.stringify(s.config))
    .map((s) => s.name);
}

test("each choice is named in the record and enters only its stages' cache keys", () => {
  const ours = smoke();
  for (const choice of UPSTREAM_CHOICES) {
    const theirs = smoke([`${choice.field}=${choice.upstream}`]);
    assert.notEqual(choice.read(ours), choice.upstream, `${choice.field}: smoke keeps ours`);
    assert.equal(upstreamChoices(theirs)[choice.field], choice.upstream);
    assert.deepEqual(changedStages(ours, theirs), choice.stages, choice.field);
  }
});

test('a choice that does not apply is not recorded and changes no key', () => {
  const imported = smoke(['training.mae={"initFrom":"mindvis-mae"}']);
  assert.equal(upstreamChoices(imported)['data.patchPadding'], undefined);
  const other = smoke(['training.mae={"initFrom":"mindvis-mae"}', 'data.patchPadding=mindvis']);
  assert.deepEqual(changedStages(imported, other), []);
  // stored-size images are not resized, so no filter is chosen
  const stored = loadExperimentConfig(join(repoRoot, 'configs/smoke.yaml')) as ReproductionConfig;
  assert.equal(upstreamChoices(stored)['data.imageResize'], undefined);
  // the patch tokenizer has no GroupNorm
  assert.equal(upstreamChoices(stored)['models.tokenizer.numerics'], undefined);
  const bicubic = loadExperimentConfig(join(repoRoot, 'configs/smoke.yaml'), ['data.imageResize=bicubic']);
  assert.deepEqual(changedStages(stored, bicubic as ReproductionConfig), []);
});

test('an unknown value is refused, naming the field', () => {
  for (const choice of UPSTREAM_CHOICES) {
    assert.throws(
      () => smoke([`${choice.field}=nearest`]),
      (e: Error) => e instanceof BadInputError && e.message.includes(choice.field),
      choice.field,
    );
  }
});

/**
 * A run's stage provenance as its artifacts would record it: each key a hash of the stage's config and its
 * inputs' keys (content-addressed keys, with every changed config changing the output).
 */
function provenance(cfg: ReproductionConfig): StageProvenance[] {
  const keys = new Map<string, string>();
  return buildPlan(cfg).map((s) => {
    const inputs = Object.fromEntries(
      Object.entries(s.needs).map(([i, from]) => [i, { key: keys.get(from)! }]),
    );
    const key = createHash('sha256')
      .update(JSON.stringify({ config: s.config, inputs }))
      .digest('hex');
    keys.set(s.name, key);
    return { name: s.name, key, config: s.config, inputs };
  });
}

test('lea compare names a changed choice as the cause of the stages it enters', () => {
  const ours = smoke();
  for (const choice of UPSTREAM_CHOICES) {
    const theirs = smoke([`${choice.field}=${choice.upstream}`]);
    const stages = stageDifferences(
      provenance(ours),
      provenance(theirs),
      choiceCauses(upstreamChoices(ours), upstreamChoices(theirs)),
    );
    const cause = `choice ${choice.field}: ${JSON.stringify(choice.read(ours))} → "${choice.upstream}"`;
    for (const { stage, differences } of stages) {
      if (choice.stages.includes(stage)) assert.equal(differences[0], cause, `${choice.field}: ${stage}`);
      // every other stage differs only through what it reads
      else
        assert.ok(
          differences.every((d) => d.startsWith('input ')),
          `${choice.field}: ${stage} ${differences.join('; ')}`,
        );
    }
    assert.deepEqual(
      choice.stages.filter((st) => !stages.some((d) => d.stage === st)),
      [],
      `${choice.field}: its stages are listed`,
    );
  }
});
