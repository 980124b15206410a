/**
 * The nine paper configs (issue 12): each parses, plans with its imported networks as stage inputs, and
 * `lea run --dry-run` refuses it before anything starts, naming every missing piece at once: the dataset files
 * this project cannot download, and each upstream network with the `lea weights import` command that fixes it.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import { canonicalJson } from '../lib/pipeline/cache.js';
import { buildPlan } from '../lib/pipeline/plan.js';
import { embeddedEnv, explain, runLea } from './helpers/lea.js';

const CONFIGS = readdirSync('configs/paper')
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => `configs/paper/${f}`);

test('nine paper configs plan the paper: stage 0 from MinD-Vis, frozen imported VQGAN, CLIP, MaskGIT from ImageNet', () => {
  assert.equal(CONFIGS.length, 9);
  for (const file of CONFIGS) {
    const cfg = loadExperimentConfig(file);
    assert.equal(cfg.pipeline, 'reproduction', file);
    if (cfg.pipeline !== 'reproduction' || cfg.data.source.kind !== 'fetch')
      throw new Error(`${file}: not a fetch config`);
    const plan = buildPlan(cfg, { manifestText: readFileSync(cfg.data.source.manifest, 'utf8') });
    const weights = Object.fromEntries(plan.map((s) => [s.name, s.weights ?? {}]));
    const dataset = cfg.data.dataset;
    assert.ok(!plan.some((s) => s.name === 'mae'), `${file}: stage 0 is imported, not trained`);
    assert.deepEqual(weights['fmri-ae'], { mae: `mindvis-mae-${dataset}` }, file);
    assert.deepEqual(weights['image-features'], { clip: 'clip-vit-h14' }, file);
    assert.deepEqual(weights.tokenizer, { vqgan: 'maskgit-tokenizer-imagenet256' }, file);
    assert.deepEqual(weights.maskgit, { clip: 'clip-vit-h14', init: 'maskgit-imagenet256' }, file);
    assert.equal(cfg.data.imageSize, 256, file);
  }
});

test("one image side per dataset: the subjects' image-side stages are the same stages (config and inputs), the rest their own", () => {
  const plans = new Map<string, ReturnType<typeof buildPlan>[]>();
  for (const file of CONFIGS) {
    const cfg = loadExperimentConfig(file);
    if (cfg.pipeline !== 'reproduction' || cfg.data.source.kind !== 'fetch') throw new Error(file);
    const plan = buildPlan(cfg, { manifestText: readFileSync(cfg.data.source.manifest, 'utf8') });
    plans.set(cfg.data.dataset, [...(plans.get(cfg.data.dataset) ?? []), plan]);
  }
  const key = (s: ReturnType<typeof buildPlan>[number]) =>
    canonicalJson([s.impl, s.config, s.needs, s.weights]);
  for (const [dataset, subjects] of plans) {
    for (const name of ['raw', 'images', 'image-features', 'tokenizer', 'maskgit'])
      assert.equal(
        new Set(subjects.map((p) => key(p.find((s) => s.name === name)!))).size,
        1,
        `${dataset} ${name}`,
      );
    assert.equal(
      new Set(subjects.map((p) => key(p.find((s) => s.name === 'prepare')!))).size,
      subjects.length,
    );
  }
  assert.deepEqual([...plans.keys()].sort(), ['bold5000', 'god']);
});

test('lea run --dry-run of a paper config names every missing dataset file and network with its import command', () => {
  for (const file of CONFIGS) {
    const r = runLea(['run', file, '--dry-run'], embeddedEnv());
    assert.equal(r.code, 2, explain(r));
    const dataset = file.includes('god') ? 'god' : 'bold5000';
    assert.match(r.stderr, new RegExp(`configs/datasets/${dataset}\\.yaml: files\\.0 .* has no url`));
    for (const [field, name, kind] of [
      ['models.imageFeatures.weights', 'clip-vit-h14', 'openclip-vit-h14'],
      ['models.tokenizer.weights', 'maskgit-tokenizer-imagenet256', 'maskgit-tokenizer'],
      ['models.maskgit.initFrom', 'maskgit-imagenet256', 'maskgit-transformer'],
      ['training.mae.initFrom', `mindvis-mae-${dataset}`, 'mindvis-mae'],
    ]) {
      assert.ok(
        r.stderr.includes(
          `${field}: weights '${name}' are not imported: run lea weights import --kind ${kind} --from FILE --name ${name}`,
        ),
        `${file}: ${field}\n${r.stderr}`,
      );
    }
  }
});

test('lea run --dry-run of the smoke config prints the plan with a measured estimate per compute stage', () => {
  // Cached stages are not measured: forcing the first stage forces all, whatever earlier tests computed.
  const r = runLea(['run', 'configs/smoke.yaml', '--dry-run', '--json', '--force', 'raw'], embeddedEnv());
  assert.equal(r.code, 0, explain(r));
  const out = JSON.parse(r.stdout) as {
    stages: { stage: string; seconds?: number; parameters?: number; cached: boolean; forced: boolean }[];
  };
  assert.ok(out.stages.every((s) => s.forced && !s.cached));
  const byName = Object.fromEntries(out.stages.map((s) => [s.stage, s]));
  for (const s of ['mae', 'fmri-ae', 'maskgit', 'latents', 'decode']) {
    assert.ok((byName[s]?.seconds ?? 0) > 0, `${s} has a measured estimate`);
  }
  assert.ok((byName['fmri-ae']?.parameters ?? 0) > 1e4);
});

test('a suite is refused before anything starts when a config is not a reproduction or two share a name', () => {
  const env = embeddedEnv();
  const twice = runLea(['run', CONFIGS[0]!, CONFIGS[0]!], env);
  assert.equal(twice.code, 2, explain(twice));
  assert.match(twice.stderr, /two configs of the suite are named 'paper-/);
  const hello = runLea(['run', 'configs/hello.yaml', 'configs/smoke.yaml'], env);
  assert.equal(hello.code, 2, explain(hello));
  assert.match(hello.stderr, /configs\/hello\.yaml: a suite runs reproduction configs, not pipeline 'hello'/);
});
