/**
 * From a reproduction config to the stage plan a run executes (spec §1):
 *
 *   raw (synth | fetch) ─┬→ prepare ─┬→ [mae] → fmri-ae → latents ─┬→ ridge ─┬→ decode ─┬→ metrics → report
 *                        │           └→ features ─────────────────┘         └→ encode ─┘
 *                        └→ images ─┬→ image-features ─→ features (the subject's rows)
 *                                   └→ tokenizer → maskgit ─────────────────────→ decode
 *
 * Each stage's config is only the sections it depends on, so changing one section re-runs just the stages
 * that read it (and what follows them). The image side (images and what reads it) names no subject when
 * data.imageSide is per-dataset, so every subject of a dataset shares its artifacts. Training and sampling go
 * to the gpu queue, the rest to cpu.
 */
import { DEFAULT_COMPILE } from '../compute/compile-modes.js';
import type { ReproductionConfig } from '../config/reproduction.js';
import { BadInputError } from '../errors.js';
import { METRIC_NETWORKS, metricNetworkNames } from '../metrics/definitions.js';
import { TRAINABLE_STAGES } from '../train/registry.js';
import type { TrainableStage } from '../train/stage.js';
import type { StagePlan } from './run-record.js';
import type { WeightsUse } from './weights-fit.js';

export interface PlanOptions {
  /** The text of the dataset manifest, when the source is `fetch` (read by the caller). */
  manifestText?: string;
}

export const DEFAULT_RUNTIME = {
  /** A dead worker's stage is retried elsewhere this long after its last heartbeat (`stale` after two thirds). */
  heartbeatSeconds: 30,
  trainingTimeoutHours: 24 * 7,
  stageTimeoutHours: 12,
  maxAttempts: 5,
  /** How long a stage waits out one S3 outage before its attempt fails (attempts are for the stage's own faults). */
  dependencyWaitMinutes: 30,
};

/** Every imported network a config uses (checked at submit time: present, of the right kind and size). */
export function weightsUses(cfg: ReproductionConfig): WeightsUse[] {
  const { models, training } = cfg;
  const uses: WeightsUse[] = [];
  const add = (field: string, name: string | undefined, kind: string) => {
    if (name) uses.push({ field, name, kind });
  };
  if (models.imageFeatures.kind === 'clip')
    add('models.imageFeatures.weights', models.imageFeatures.weights, 'openclip-vit-h14');
  if (models.tokenizer.kind === 'vqgan' && models.tokenizer.frozen)
    add('models.tokenizer.weights', models.tokenizer.weights, 'maskgit-tokenizer');
  add('models.maskgit.initFrom', models.maskgit.initFrom, 'maskgit-transformer');
  if (training.mae && 'initFrom' in training.mae)
    add('training.mae.initFrom', training.mae.initFrom, 'mindvis-mae');
  const metricNets = metricNetworkNames(cfg.metrics);
  for (const [input, { field, kind }] of Object.entries(METRIC_NETWORKS))
    add(field, metricNets[input as keyof typeof METRIC_NETWORKS], kind);
  return uses;
}

/** The tokenizer's grid must tile the (resized) images: a VQGAN halves them (levels − 1) times. */
function checkImageSize(cfg: ReproductionConfig): void {
  const size = cfg.data.imageSize;
  const t = cfg.models.tokenizer;
  if (size === undefined) return;
  const factor = t.kind === 'vqgan' ? 2 ** (t.chMult.length - 1) : t.patchSize;
  if (size % factor !== 0) {
    throw new BadInputError(
      `data.imageSize ${size}: the tokenizer takes sides that are multiples of ${factor} (models.tokenizer)`,
    );
  }
}

/** A stage with the imported weights it reads (input name → weights name); undefined names are left out. */
function withWeights(plan: StagePlan, weights: Record<string, string | undefined>): StagePlan {
  const named = Object.entries(weights).filter((e): e is [string, string] => e[1] !== undefined);
  return named.length ? { ...plan, weights: Object.fromEntries(named) } : plan;
}

export function buildPlan(cfg: ReproductionConfig, opts: PlanOptions = {}): StagePlan[] {
  const rt = { ...DEFAULT_RUNTIME, ...cfg.runtime };
  const stage = (
    name: string,
    queue: StagePlan['queue'],
    needs: Record<string, string>,
    config: unknown,
    training = false,
  ): StagePlan => ({
    name,
    impl: name,
    queue,
    needs,
    config,
    timeoutMinutes: 60 * (training ? rt.trainingTimeoutHours : rt.stageTimeoutHours),
    heartbeatSeconds: rt.heartbeatSeconds,
    maxAttempts: rt.maxAttempts,
    dependencyWaitMinutes: rt.dependencyWaitMinutes,
  });
  const { data, models, seed } = cfg;
  const plan: StagePlan[] = [];
  const src = data.source;
  if (src.kind === 'synthetic') {
    if (Number(/[0-9]+$/.exec(data.subject)![0]) > src.subjects)
      throw new BadInputError(
        `data.subject ${data.subject}: the synthetic world has ${src.subjects} subject(s) (data.source.subjects)`,
      );
    plan.push({
      ...stage(
        'synth',
        'cpu',
        {},
        // one-subject worlds keep the key they always had
        {
          format: data.dataset,
          scale: src.scale,
          seed: src.seed,
          ...(src.subjects > 1 ? { subjects: src.subjects } : {}),
        },
      ),
      name: 'raw',
    });
  } else if (src.kind === 'fetch') {
    if (opts.manifestText === undefined)
      throw new BadInputError(`data.source.manifest: ${src.manifest} was not read`);
    const config = {
      manifest: { source: src.manifest, text: opts.manifestText },
      ...(src.baseUrl ? { baseUrl: src.baseUrl } : {}),
    };
    plan.push({ ...stage('fetch', 'cpu', {}, config), name: 'raw' });
  } else {
    throw new BadInputError(
      `data.source.kind local (${src.path}): a pipeline run reads data from the artifact store, which every ` +
        `worker can reach; list the folder in a dataset manifest with file:// URLs and use kind: fetch`,
    );
  }
  // the filter enters a key only where images are resized
  const imageSize = data.imageSize ? { imageSize: data.imageSize, imageResize: data.imageResize } : {};
  plan.push(
    stage(
      'prepare',
      'cpu',
      { raw: 'raw' },
      {
        dataset: data.dataset,
        subject: data.subject,
        ...imageSize,
        ...(data.roiPatch ? { roiPatch: data.roiPatch } : {}),
        // GOD's rule for its test rows; BOLD5000 has no separate test normalisation
        ...(data.dataset === 'god' ? { testNormalisation: data.testNormalisation } : {}),
      },
    ),
  );

  checkImageSize(cfg);
  // CLIP reads the stored images only where they differ from the resized ones (UPSTREAM_CHOICES: data.clipInput)
  const clipReadsStored =
    data.imageSize !== undefined && models.imageFeatures.kind === 'clip' && data.clipInput === 'stored';
  const uses = Object.fromEntries(weightsUses(cfg).map((u) => [u.field, u.name]));
  const clip = uses['models.imageFeatures.weights'];
  /**
   * The trainable stages (lib/train/registry.ts) that train on `side`, in the table's order. A stage's config
   * is the parts of the whole config it reads, and no others, so that e.g. a new MaskGIT learning rate does not
   * retrain the autoencoder; an image-side stage names the dataset, never the subject (the images artifact says
   * which).
   */
  const trainingStages = (side: TrainableStage['data']): StagePlan[] =>
    Object.values(TRAINABLE_STAGES).flatMap((def) => {
      const planned = def.data === side ? def.plan(cfg, uses) : undefined;
      if (!planned) return [];
      const { dataset, subject, roiPatch } = data;
      const { data: dataOptions, ...sections } = planned.sections;
      const identity =
        side === 'prepared' ? { dataset, subject, ...(roiPatch ? { roiPatch } : {}) } : { dataset };
      const config = {
        seed,
        data: { ...identity, ...dataOptions },
        ...sections,
        // how steps run is part of what a trained model is (xla rounds otherwise)
        runtime: { compile: cfg.runtime?.compile ?? DEFAULT_COMPILE },
      };
      const needs = { [side]: side === 'prepared' ? 'prepare' : 'images', ...planned.earlier };
      return [withWeights(stage(def.name, 'gpu', needs, config, true), planned.weights)];
    });
  plan.push(...trainingStages('prepared'));
  plan.push(
    stage(
      'images',
      'cpu',
      { raw: 'raw' },
      {
        dataset: data.dataset,
        ...(data.imageSide === 'per-subject' ? { subject: data.subject } : {}),
        ...imageSize,
        ...(clipReadsStored ? { keepStored: true } : {}),
      },
    ),
  );
  plan.push({
    ...withWeights(
      stage(
        'image-features',
        'cpu',
        { images: 'images' },
        // imported CLIP draws nothing: no seed, so every seed of a suite shares its features
        {
          ...(models.imageFeatures.kind === 'clip' ? {} : { seed }),
          model: models.imageFeatures,
          ...(clipReadsStored ? { input: 'stored' } : {}),
        },
      ),
      {
        clip,
      },
    ),
    impl: 'features',
  });
  plan.push({
    ...stage('features', 'cpu', { features: 'image-features', prepared: 'prepare' }, {}),
    impl: 'subject-features',
  });
  plan.push(...trainingStages('images'));
  plan.push(stage('latents', 'gpu', { prepared: 'prepare', ae: 'fmri-ae' }, {}));
  plan.push(stage('ridge', 'cpu', { latents: 'latents', features: 'features' }, cfg.alignment));
  plan.push(
    stage(
      'decode',
      'gpu',
      { prepared: 'prepare', ridge: 'ridge', maskgit: 'maskgit', tokenizer: 'tokenizer' },
      { seed: cfg.samplingSeed ?? seed, ...cfg.decoding },
    ),
  );
  plan.push(
    stage('encode', 'cpu', { ridge: 'ridge', ae: 'fmri-ae', features: 'features', latents: 'latents' }, {}),
  );
  plan.push(
    withWeights(
      stage(
        'metrics',
        'cpu',
        {
          prepared: 'prepare',
          decode: 'decode',
          encode: 'encode',
          features: 'features',
          latents: 'latents',
          ridge: 'ridge',
        },
        {
          seed,
          ...(cfg.samplingSeed === undefined ? {} : { samplingSeed: cfg.samplingSeed }),
          alignment: cfg.alignment,
          imageFeatures: models.imageFeatures,
          intervals: cfg.metrics.intervals,
          ...(cfg.metrics.inception ? { fidResize: cfg.metrics.fidResize } : {}),
        },
      ),
      { clip, ...metricNetworkNames(cfg.metrics) },
    ),
  );
  return plan;
}
