/** Data stages: the synthetic world (or a fetched dataset) → one subject's prepared split. */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { fetchDataset, loadDatasetManifest } from '../../lib/data/download.js';
import { IMAGE_RESIZES, TEST_NORMALISATIONS } from '../../lib/config/choice-values.js';
import { prepareDataset, prepareImages } from '../../lib/data/prepare.js';
import { synthesize } from '../../lib/data/synth.js';
import { stageConfig, type StageContext, type StageImpl, type StageResult } from '../stage-contract.js';

async function folderFiles(dir: string, prefix = ''): Promise<StageResult['files']> {
  const out: StageResult['files'] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await folderFiles(path, `${prefix}${e.name}/`)));
    else out.push({ path: `${prefix}${e.name}`, fromFile: path });
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

const synthConfig = z.strictObject({
  format: z.enum(['god', 'bold5000']),
  scale: z.enum(['tiny', 'small', 'paper']),
  seed: z.number().int().min(0),
  subjects: z.number().int().min(1).optional(),
});

/** Writes the synthetic world in a dataset's own file formats: the stand-in for fetch on miniature runs. */
export const synthStage: StageImpl = {
  codeVersion: '1',
  async run(ctx: StageContext, raw: unknown) {
    const cfg = stageConfig(synthConfig, raw, ctx.stage);
    const out = join(ctx.workdir, 'world');
    const summary = await synthesize({ ...cfg, out });
    return {
      files: await folderFiles(out),
      summary: { subject: summary.subject, files: summary.files.length },
    };
  },
};

const prepareConfig = z.strictObject({
  dataset: z.enum(['god', 'bold5000']),
  subject: z.string().min(1),
  imageSize: z.number().int().positive().optional(),
  imageResize: z.enum(IMAGE_RESIZES).optional(),
  roiPatch: z.array(z.number().int().positive()).min(1).optional(),
  testNormalisation: z.enum(TEST_NORMALISATIONS).optional(),
});

/** Loads one subject from the raw dataset artifact, splits and z-scores it (lib/data/prepare). */
export const prepareStage: StageImpl = {
  // 2: meta.json records where the ROI sizes came from (roiPatchSource); 3: stimuli.json
  codeVersion: '3',
  async run(ctx: StageContext, raw: unknown) {
    const cfg = stageConfig(prepareConfig, raw, ctx.stage);
    const path = await ctx.inputDir('raw');
    const out = join(ctx.workdir, 'prepared');
    const meta = await prepareDataset({ ...cfg, path, out });
    return {
      files: await folderFiles(out),
      summary: { voxels: meta.K, train: meta.split.train, test: meta.split.test },
      meta: { prepared: { K: meta.K, roiSizes: meta.roiSizes, normalisation: meta.normalisation } },
    };
  },
};

const imagesConfig = z.strictObject({
  dataset: z.enum(['god', 'bold5000']),
  subject: z.string().min(1).optional(),
  imageSize: z.number().int().positive().optional(),
  imageResize: z.enum(IMAGE_RESIZES).optional(),
  keepStored: z.literal(true).optional(),
});

/** The image side's images (lib/data/prepare prepareImages): the dataset's, or one subject's (imageSide). */
export const imagesStage: StageImpl = {
  codeVersion: '1',
  async run(ctx: StageContext, raw: unknown) {
    const cfg = stageConfig(imagesConfig, raw, ctx.stage);
    const path = await ctx.inputDir('raw');
    const out = join(ctx.workdir, 'images');
    const meta = await prepareImages({ ...cfg, path, out });
    return { files: await folderFiles(out), summary: { train: meta.split.train, test: meta.split.test } };
  },
};

const fetchConfig = z.strictObject({
  manifest: z.strictObject({ source: z.string(), text: z.string() }),
  baseUrl: z.string().optional(),
});

/** Downloads and verifies a dataset manifest's files (lib/data/download); a second fetch is a no-op. */
export const fetchStage: StageImpl = {
  codeVersion: '1',
  async run(ctx: StageContext, raw: unknown) {
    const cfg = stageConfig(fetchConfig, raw, ctx.stage);
    const manifest = loadDatasetManifest(cfg.manifest.source, cfg.manifest.text);
    const result = await fetchDataset(manifest, cfg.manifest.source, ctx.store, {
      cacheDir: join(ctx.workdir, 'downloads'),
      baseUrl: cfg.baseUrl,
      sourceS3: ctx.store.s3,
      onProgress: (p) => ctx.heartbeat({ file: p.file, bytes: p.bytes, total: p.total }),
    });
    const stored = await ctx.store.require(result.ref);
    return {
      files: stored.files.map((f) => ({ path: f.path, blob: { sha256: f.sha256, size: f.size } })),
      summary: { files: stored.files.length, downloaded: result.downloaded.length },
    };
  },
};
