/**
 * `node --import tsx bench/vit.ts [--batch N] [--reps N] [--no-reference]`: images per second of the
 * paper-size CLIP image tower, open_clip ViT-H/14 (224 px, width 1280, 32 layers, 16 heads, output 1024,
 * L2-normalised; random weights), for lib/models/vit.ts against open_clip on PyTorch CPU at the same thread
 * count (bench/reference/vit.py, run from the oracle venv that `LEA_SETUP_ORACLES=1 npm run setup` installs).
 * Both sides time the network on preprocessed pixels, one warm-up call then `reps` timed calls of `batch`
 * images; our preprocessing (PIL-exact resize of 500x375 images, crop, normalise) is timed separately. The
 * reference runs first and exits before our model is built (each holds ~2.5 GB of weights). Target: ≥ 0.7x
 * PyTorch's images per second. Prints a table and writes JSON to bench/results/.
 */
import * as tf from '@tensorflow/tfjs';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { initCompute } from '../lib/compute/backend.js';
import { Rng } from '../lib/compute/rng.js';
import { VisionTransformer, preprocessImages, vitParamShapes, type VitConfig } from '../lib/models/vit.js';
import { ndarray, type NdArray } from '../lib/tensors/ndarray.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const TARGET = 0.7;

/** open_clip ViT-H-14's image tower (lib/weights/kinds/openclip-vit-h14.ts maps its checkpoint to this). */
const CONFIG: VitConfig = {
  imageSize: 224,
  patch: 14,
  width: 1280,
  layers: 32,
  heads: 16,
  mlp: 5120,
  outDim: 1024,
  eps: 1e-5,
  lnPre: true,
  patchBias: false,
  headBias: false,
  l2Normalize: true,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Random weights of the right sizes: LayerNorm gains near 1, everything else N(0, 0.02²). */
function randomWeights(cfg: VitConfig): Map<string, NdArray> {
  const rng = new Rng(0, 'bench-vit');
  const tensors = new Map<string, NdArray>();
  for (const [name, shape] of vitParamShapes(cfg)) {
    const size = shape.reduce((a, b) => a * b, 1);
    const mean = /norm.*\.weight$/.test(name) ? 1 : 0;
    tensors.set(name, ndarray('float32', shape, rng.fillNormal(new Float32Array(size), mean, 0.02)));
  }
  return tensors;
}

function reference(threads: number, batch: number, reps: number): { seconds: number[]; torch: string } {
  const python = `${root}.tools/oracle-venv/bin/python`;
  if (!existsSync(python)) throw new Error(`${python} missing: run LEA_SETUP_ORACLES=1 npm run setup`);
  const out = execFileSync(
    python,
    [`${root}bench/reference/vit.py`, String(threads), String(batch), '1', String(reps)],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return JSON.parse(out.trim().split('\n').pop() as string) as { seconds: number[]; torch: string };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let batch = 4;
  let reps = 3;
  let withReference = true;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--batch') batch = Number(argv[++i]);
    else if (argv[i] === '--reps') reps = Number(argv[++i]);
    else if (argv[i] === '--no-reference') withReference = false;
    else throw new Error(`unknown argument ${argv[i]} (use --batch N, --reps N, --no-reference)`);
  }
  if (!(Number.isInteger(batch) && batch >= 1 && Number.isInteger(reps) && reps >= 1))
    throw new Error('--batch and --reps must be positive integers');
  const provenance = await initCompute();
  const ref = withReference ? reference(provenance.threads, batch, reps) : undefined;

  const vit = new VisionTransformer(CONFIG, randomWeights(CONFIG), 'bench');
  const rng = new Rng(1, 'bench-vit-pixels');
  const s = CONFIG.imageSize;
  const pixels = tf.tensor4d(rng.fillNormal(new Float32Array(batch * s * s * 3)), [batch, s, s, 3]);
  const seconds: number[] = [];
  for (let i = 0; i < reps + 1; i++) {
    const t0 = performance.now();
    const y = vit.forward(pixels);
    await y.data();
    y.dispose();
    if (i > 0) seconds.push((performance.now() - t0) / 1e3);
  }
  pixels.dispose();
  vit.dispose();

  // preprocessing of typical photographs (GOD's ImageNet images are around 500x375)
  const images = { data: new Uint8Array(batch * 375 * 500 * 3), count: batch, height: 375, width: 500 };
  for (let i = 0; i < images.data.length; i++) images.data[i] = rng.integer(0, 256);
  const t0 = performance.now();
  preprocessImages(images, s, CONFIG.mean, CONFIG.std);
  const prepPerImage = (performance.now() - t0) / 1e3 / batch;

  const ours = batch / median(seconds);
  const theirs = ref ? batch / median(ref.seconds) : undefined;
  const ratio = theirs ? ours / theirs : undefined;
  const machine = {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
  };
  console.log(
    `${machine.cores} cores (${machine.cpu}); tfjs ${provenance.backend} backend, ${provenance.threads} threads; ` +
      `open_clip ViT-H/14 image tower, batch ${batch}, ${reps} timed calls after 1 warm-up`,
  );
  console.log(
    `ours     ${ours.toFixed(3)} images/s  (${seconds.map((x) => x.toFixed(2)).join(', ')} s per call)`,
  );
  if (ref && theirs && ratio !== undefined) {
    console.log(
      `PyTorch  ${theirs.toFixed(3)} images/s  (torch ${ref.torch}; ${ref.seconds.map((x) => x.toFixed(2)).join(', ')} s per call)`,
    );
    console.log(
      `ratio    ${ratio.toFixed(2)}x PyTorch  target >= ${TARGET}x: ${ratio >= TARGET ? 'met' : 'NOT met'}`,
    );
  }
  console.log(
    `preprocessing ${(prepPerImage * 1e3).toFixed(1)} ms per 500x375 image (not in the figures above)`,
  );

  const dir = `${root}bench/results`;
  mkdirSync(dir, { recursive: true });
  const file = `${dir}/vit-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(
    file,
    JSON.stringify(
      {
        machine,
        provenance,
        config: CONFIG,
        batch,
        ours: { secondsPerCall: seconds, imagesPerSecond: ours, preprocessSecondsPerImage: prepPerImage },
        ...(ref ? { reference: { ...ref, imagesPerSecond: theirs }, ratio, target: TARGET } : {}),
      },
      null,
      2,
    ),
  );
  console.log(`wrote ${file}`);
}

await main();
