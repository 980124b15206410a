/**
 * The two imported ViTs (issue 11): open_clip's image tower and torchvision's VisionTransformer classifier,
 * reduced, random weights, saved as upstream saves them, match the references run through their own eval
 * preprocessing (PIL images → open_clip's preprocess / torchvision's ImageClassification preset) to 1e-4
 * relative; the preprocessing itself matches pixel for pixel. A shapes-only check compares the full-size
 * ViT-H/14 key and shape tables (built on torch's meta device) with what each kind maps for fullSize.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { BadInputError } from '../lib/errors.js';
import { centreCrop, resizePil, shorterSideSize } from '../lib/images/resize.js';
import type { ImageBatch } from '../lib/models/image-features.js';
import { preprocessImages, vitParamShapes, type VitConfig } from '../lib/models/vit.js';
import type { NdArray } from '../lib/tensors/ndarray.js';
import { readNpy } from '../lib/tensors/npy.js';
import type { WeightKind } from '../lib/weights/kind.js';
import { openclipVitH14Kind, planOpenClip } from '../lib/weights/kinds/openclip-vit-h14.js';
import { planTorchvision, torchvisionVitH14Kind } from '../lib/weights/kinds/torchvision-vit-h14.js';
import type { VitPlan } from '../lib/weights/kinds/vit-common.js';
import { openCheckpoint } from '../lib/weights/open.js';
import type { CheckpointSource, TensorRef } from '../lib/weights/source.js';
import { runOracle } from './helpers/oracle.js';
import { maxRelError } from './helpers/compare.js';

const TOL = 1e-4;
const oracles = fileURLToPath(new URL('./oracles', import.meta.url));

/** Reduced models, fixed images, the references' preprocessed pixels and outputs, PIL resizes. */
const REFERENCE = readFileSync(join(oracles, 'vits.py'), 'utf8');

/** ViT-H-14 (open_clip) and vit_h_14 at 518 px (torchvision) built on the meta device: names and shapes. */
const META = String.raw`
import sys, json, torch
sys.path.insert(0, sys.argv[1])
from refs import import_torchvision
tv = import_torchvision()
import open_clip
with torch.device('meta'):
    clip = open_clip.create_model('ViT-H-14', device='meta')
    vit = tv.models.vit_h_14(image_size=518)
print(json.dumps({'openclip': {k: list(v.shape) for k, v in clip.state_dict().items()},
                  'torchvision': {k: list(v.shape) for k, v in vit.state_dict().items()}}))
`;

const RESIZES: [number, number][] = [
  [40, 56], // down both ways
  [200, 300], // up both ways
  [97, 56], // width only
  [150, 131], // height only
  [150, 61], // up and down
];

let dir: string;
before(async () => {
  await initCompute();
  dir = await mkdtemp(join(tmpdir(), 'lea-vit-'));
  runOracle(REFERENCE, [dir, oracles, JSON.stringify(RESIZES)]);
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const load = (name: string): Promise<NdArray> => readNpy(join(dir, `${name}.npy`));

function batchOf(a: NdArray): ImageBatch {
  const [count, height, width] = a.shape as [number, number, number];
  return { data: a.data as Uint8Array, count, height, width };
}

/** `name`.pth (torch.save of the state dict, as upstream ships it) with its tensors in a mutable map. */
async function openPth(name: string): Promise<CheckpointSource & { tensors: Map<string, TensorRef> }> {
  const src = await openCheckpoint(join(dir, `${name}.pth`));
  return {
    ...src,
    path: src.path,
    format: src.format,
    tensors: new Map(src.tensors),
    close: () => src.close(),
  };
}

describe('PIL-exact resizing', () => {
  it('bicubic resize equals PIL pixel for pixel, down- and up-scaling a non-square image', async () => {
    const src = await load('resize-in');
    const img = { data: src.data as Uint8Array, height: 97, width: 131, channels: 3 };
    for (const [h, w] of RESIZES) {
      const ours = resizePil(img, h, w, 'bicubic');
      const ref = await load(`resize-${h}x${w}`);
      assert.deepEqual([ours.height, ours.width], [h, w]);
      assert.ok(
        Buffer.from(ours.data).equals(Buffer.from(ref.data as Uint8Array)),
        `${h}x${w} differs from PIL`,
      );
    }
  });

  it("torchvision's Resize(S) long side and CenterCrop offsets", () => {
    assert.deepEqual(shorterSideSize(75, 101, 56), [56, 75]); // int(56 · 101 / 75) = int(75.41)
    assert.deepEqual(shorterSideSize(61, 47, 70), [90, 70]); // int(70 · 61 / 47) = int(90.85)
    assert.deepEqual(shorterSideSize(50, 50, 7), [7, 7]);
    // Python's round halves to even: 5 spare rows → top round(2.5) = 2; 3 spare columns → left round(1.5) = 2
    const img = { data: Uint8Array.from({ length: 7 * 6 }, (_, i) => i), height: 7, width: 6, channels: 1 };
    assert.equal(centreCrop(img, 2, 3).data[0], 2 * 6 + 2);
    assert.equal(centreCrop(img, 6, 6).data[0], 0); // round(0.5) = 0
    assert.equal(centreCrop(img, 4, 6).data[0], 2 * 6); // round(1.5) = 2
  });
});

const CASES: {
  name: string;
  kind: WeightKind;
  output: string;
  heads: number;
  unused: (name: string) => boolean;
}[] = [
  {
    name: 'openclip',
    kind: openclipVitH14Kind,
    output: 'features',
    heads: 3,
    unused: (n) => !n.startsWith('visual.'),
  },
  { name: 'torchvision', kind: torchvisionVitH14Kind, output: 'logits', heads: 4, unused: () => false },
];

for (const c of CASES) {
  describe(`${c.kind.name} import`, () => {
    it(`${c.output} of a reduced model match the reference to ${TOL} relative`, async (t) => {
      const src = await openPth(c.name);
      const imported = await c.kind.importFrom(src, { heads: c.heads });
      await src.close();
      assert.deepEqual(imported.unused, [...src.tensors.keys()].filter(c.unused));
      // the safetensors copy of the same state dict imports to the same values
      const st = await openCheckpoint(join(dir, `${c.name}.safetensors`));
      const fromSt = await c.kind.importFrom(st, { heads: c.heads });
      await st.close();
      assert.deepEqual(fromSt.config, imported.config);
      for (const [name, a] of imported.tensors) assert.deepEqual(fromSt.tensors.get(name), a, name);
      const cfg = imported.config as VitConfig;
      const images = batchOf(await load(`${c.name}-images`));

      // preprocessing: NHWC ours, NCHW theirs; equal to the last bit
      const pixels = preprocessImages(images, cfg.imageSize, cfg.mean, cfg.std);
      const ref = (await load(`${c.name}-pixels`)).data as Float32Array;
      const s = cfg.imageSize;
      let mismatches = 0;
      for (let i = 0; i < ref.length; i++) {
        const x = i % s;
        const y = Math.floor(i / s) % s;
        const ch = Math.floor(i / (s * s)) % 3;
        const n = Math.floor(i / (3 * s * s));
        if (pixels[((n * s + y) * s + x) * 3 + ch] !== ref[i]) mismatches++;
      }
      assert.equal(mismatches, 0, 'preprocessed pixels differ from the reference transform');

      const net = c.kind.build!(imported.tensors, imported.config);
      try {
        const out = await net.outputs[c.output]!(images);
        const expected = await load(`${c.name}-${c.output}`);
        assert.deepEqual(out.shape, expected.shape);
        const err = maxRelError(out.data as Float32Array, expected.data as Float32Array);
        t.diagnostic(`max|ours - reference| / max|reference| = ${err.toExponential(2)}`);
        assert.ok(err < TOL, `relative error ${err}`);
      } finally {
        net.dispose();
      }
    });

    it('refuses a tensor of the wrong shape, naming the file and the tensor', async () => {
      const src = await openPth(c.name);
      const name =
        c.name === 'openclip' ? 'visual.transformer.resblocks.1.mlp.c_proj.weight' : 'heads.head.bias';
      const ref = src.tensors.get(name)!;
      src.tensors.set(name, { ...ref, shape: [...ref.shape, 1] });
      await assert.rejects(
        c.kind.importFrom(src, { heads: c.heads }),
        (err: unknown) =>
          err instanceof BadInputError && err.message.includes(src.path) && err.message.includes(name),
      );
      await src.close();
    });
  });
}

describe('full-size ViT-H/14 tables', () => {
  let tables: Record<'openclip' | 'torchvision', Record<string, number[]>>;
  before(() => {
    tables = JSON.parse(runOracle(META, [oracles])) as typeof tables;
  });

  /** A source of names and shapes only: planning must not read anything. */
  function shapesOnly(shapes: Record<string, number[]>): CheckpointSource {
    const tensors = new Map<string, TensorRef>();
    for (const [name, shape] of Object.entries(shapes))
      tensors.set(name, { name, dtype: 'float32', shape, read: () => Promise.reject(new Error('read')) });
    return { path: 'meta', format: 'torch-zip', tensors, extras: {}, close: () => Promise.resolve() };
  }

  const check = (kind: WeightKind, plan: VitPlan, shapes: Record<string, number[]>, owned: string[]) => {
    for (const [k, v] of Object.entries(kind.fullSize)) assert.equal(plan.config[k as keyof VitConfig], v, k);
    assert.deepEqual(plan.plan.map((m) => m.from).sort(), [...owned].sort());
    for (const m of plan.plan) assert.deepEqual(m.shape, shapes[m.from], m.from);
    assert.deepEqual(plan.plan.map((m) => m.to).sort(), [...vitParamShapes(plan.config).keys()].sort());
  };

  it('open_clip ViT-H-14: every visual.* tensor, shapes as published', () => {
    const shapes = tables.openclip;
    const plan = planOpenClip(shapesOnly(shapes), {});
    check(
      openclipVitH14Kind,
      plan,
      shapes,
      Object.keys(shapes).filter((n) => n.startsWith('visual.')),
    );
  });

  it('torchvision vit_h_14 (518 px): every tensor, shapes as published', () => {
    const shapes = tables.torchvision;
    const plan = planTorchvision(shapesOnly(shapes), {});
    check(torchvisionVitH14Kind, plan, shapes, Object.keys(shapes));
  });
});
