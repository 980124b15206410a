/**
 * The paper's decoding metrics (spec §5) through lib/metrics/decoding.ts with the paper's networks, imported
 * from random-weight reference networks saved as upstream saves them (nothing can be downloaded): a reduced
 * torchvision ViT with 1000 classes (50-way), torchvision AlexNet with the lpips wheel's heads (psm), and a
 * reduced open_clip ViT (CLIP 2-way). The references are numpy transcriptions of spec §5.1, §5.2 and §5.5 on
 * the reference networks' own outputs; the 50-way replays the very distractor draws the metric used.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { itemsOf } from '../lib/metrics/common.js';
import { decodingMetrics, derangement, nWayRng, type MetricRow } from '../lib/metrics/decoding.js';
import { metricDefinition } from '../lib/metrics/definitions.js';
import { featureTwoWay } from '../lib/metrics/identification.js';
import { Lpips } from '../lib/metrics/lpips.js';
import { argmaxRows, drawDistractors } from '../lib/metrics/nway.js';
import { createImageFeatureExtractor, type ImageBatch } from '../lib/models/image-features.js';
import { readNpy, writeNpy } from '../lib/tensors/npy.js';
import type { WeightKind } from '../lib/weights/kind.js';
import { lpipsAlexKind } from '../lib/weights/kinds/lpips-alex.js';
import { openclipVitH14Kind } from '../lib/weights/kinds/openclip-vit-h14.js';
import { torchvisionAlexnetKind } from '../lib/weights/kinds/torchvision-alexnet.js';
import { torchvisionVitH14Kind } from '../lib/weights/kinds/torchvision-vit-h14.js';
import { openCheckpoint } from '../lib/weights/open.js';
import { runOracle } from './helpers/oracle.js';

const oracles = fileURLToPath(new URL('./oracles', import.meta.url));
const ITEMS = 8;
const SAMPLES = 2;
const SEED = 5;

/** Networks, images (gt [N,64,64,3], samples [N,S,64,64,3]) and the networks' outputs on them. */
const NETWORKS = String.raw`
import sys, json, warnings, shutil, numpy as np, torch
warnings.filterwarnings('ignore')
out = sys.argv[1]; sys.path.insert(0, sys.argv[2]); N, S = int(sys.argv[3]), int(sys.argv[4])
from refs import import_torchvision
tv = import_torchvision()
import open_clip, lpips
from open_clip import factory
from PIL import Image
from torchvision.models.vision_transformer import VisionTransformer
from torchvision.transforms._presets import ImageClassification
from torchvision.transforms import InterpolationMode
torch.manual_seed(7); rng = np.random.default_rng(7); torch.set_num_threads(2)

def jitter(model):
    with torch.no_grad():
        for p in model.parameters(): p.add_(torch.randn_like(p) * 0.05)

low = rng.uniform(0, 255, (N, 4, 4, 3))
gt = np.clip(np.repeat(np.repeat(low, 16, 1), 16, 2) + rng.normal(0, 20, (N, 64, 64, 3)), 0, 255).astype(np.uint8)
# samples: each item's ground truth, degraded (so the metrics are well above chance, not at 1)
samples = np.stack([np.clip(gt.astype(int) + rng.integers(-90, 91, gt.shape), 0, 255) for _ in range(S)], 1).astype(np.uint8)
np.save(f'{out}/gt.npy', gt); np.save(f'{out}/samples.npy', samples)
flat = np.concatenate([gt, samples.reshape(-1, 64, 64, 3)])

vit = VisionTransformer(image_size=28, patch_size=14, num_layers=1, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=1000)
vit.eval(); jitter(vit); torch.save(vit.state_dict(), f'{out}/classifier.pth')
tf = ImageClassification(crop_size=28, resize_size=28, interpolation=InterpolationMode.BICUBIC)
with torch.no_grad():
    np.save(f'{out}/logits.npy', vit(torch.stack([tf(Image.fromarray(a)) for a in flat])).double().numpy())

factory._MODEL_CONFIGS['tiny-vit'] = {
    'embed_dim': 48,
    'vision_cfg': {'image_size': 56, 'layers': 2, 'width': 96, 'head_width': 32, 'patch_size': 14},
    'text_cfg': {'context_length': 8, 'vocab_size': 100, 'width': 32, 'heads': 2, 'layers': 1},
}
clip, _, preprocess = open_clip.create_model_and_transforms('tiny-vit')
clip.eval(); jitter(clip); torch.save(clip.state_dict(), f'{out}/clip.pth')
with torch.no_grad():
    np.save(f'{out}/clip.npy', clip.encode_image(torch.stack([preprocess(Image.fromarray(a)) for a in flat]), normalize=True).double().numpy())

alex = tv.models.alexnet(weights=None).eval(); torch.save(alex.state_dict(), f'{out}/alexnet.pth')
shutil.copyfile(lpips.__file__.replace('__init__.py', 'weights/v0.1/alex.pth'), f'{out}/lpips-alex.pth')
lp = lpips.LPIPS(net='alex', version='0.1', pretrained=True, pnet_rand=True, verbose=False).eval()
taps = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
lp.load_state_dict({f'net.slice{taps[i]}.{i}.{p}': alex.state_dict()[f'features.{i}.{p}'] for i in taps for p in ('weight', 'bias')}, strict=False)
t = lambda u8: torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255 * 2 - 1
with torch.no_grad():
    m = [lp(t(samples[:, s]).repeat_interleave(N, 0), t(gt).repeat(N, 1, 1, 1)).reshape(N, N).double().numpy() for s in range(S)]
np.save(f'{out}/lpips.npy', np.stack(m))
`;

/** Spec §5 transcribed on the reference outputs; the 50-way with the draws the metric used. */
const TRANSCRIPTION = String.raw`
import sys, json, numpy as np
out = sys.argv[1]; N, S = int(sys.argv[2]), int(sys.argv[3])
logits = np.load(f'{out}/logits.npy'); clip = np.load(f'{out}/clip.npy'); lp = np.load(f'{out}/lpips.npy')
draws = np.load(f'{out}/draws.npy')  # [S, N, trials, 49]
def softmax(x): e = np.exp(x - x.max(1, keepdims=True)); return e / e.sum(1, keepdims=True)
cstar = logits[:N].argmax(1)
nway, clip2, psm = [], [], []
for s in range(S):
    p = softmax(logits[N:].reshape(N, S, -1)[:, s])
    # 5.1: a trial succeeds when p[c*] is the largest of the 50
    nway.append(np.mean([np.mean([p[i, cstar[i]] >= p[i, d].max() for d in draws[s, i]]) for i in range(N)]))
    # 5.5: R = corr(ground truths (rows), predictions (columns)); column j counts rows k with R[k,j] < R[j,j]
    g = clip[:N]; f = clip[N:].reshape(N, S, -1)[:, s]
    R = np.corrcoef(np.concatenate([g, f]))[:N, N:]
    clip2.append(np.mean([(R[:, j] < R[j, j]).sum() for j in range(N)]) / (N - 1))
    # 5.2 psm: lower LPIPS is better; score_i = fraction of j != i with d(pred_i, gt_i) < d(pred_i, gt_j)
    m = lp[s]
    psm.append(np.mean([np.mean([m[i, i] < m[i, j] for j in range(N) if j != i]) for i in range(N)]))
print(json.dumps({'nway50': nway, 'clip': clip2, 'psm': psm, 'cstar': cstar.tolist()}))
`;

let dir: string;
before(async () => {
  await initCompute();
  dir = await mkdtemp(join(tmpdir(), 'lea-metrics-paper-'));
  runOracle(NETWORKS, [dir, oracles, String(ITEMS), String(SAMPLES)]);
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function importFile(kind: WeightKind, file: string, heads?: number) {
  const src = await openCheckpoint(join(dir, file), kind.entry ? { entry: kind.entry } : {});
  try {
    return await kind.importFrom(src, heads ? { heads } : {});
  } finally {
    await src.close();
  }
}

test('50-way (ViT classifier), psm (LPIPS) and CLIP 2-way equal spec §5 transcribed on the reference networks', async (t) => {
  const gtArr = await readNpy(join(dir, 'gt.npy'));
  const samples = await readNpy(join(dir, 'samples.npy'));
  const gt: ImageBatch = { data: gtArr.data as Uint8Array, count: ITEMS, height: 64, width: 64 };
  const vitImport = await importFile(torchvisionVitH14Kind, 'classifier.pth', 2);
  const clipImport = await importFile(openclipVitH14Kind, 'clip.pth', 3);
  const vit = torchvisionVitH14Kind.build!(vitImport.tensors, vitImport.config);
  const clip = openclipVitH14Kind.build!(clipImport.tensors, clipImport.config);
  const lpips = new Lpips(
    (await importFile(torchvisionAlexnetKind, 'alexnet.pth')).tensors,
    (await importFile(lpipsAlexKind, 'lpips-alex.pth')).tensors,
    'test',
  );
  const phi = createImageFeatureExtractor({ kind: 'random-relu', dim: 16, hidden: 32 }, gt, 1);
  let rows: MetricRow[];
  let cstar: Int32Array;
  try {
    rows = await decodingMetrics({
      groundTruth: gt,
      samples: { data: samples.data as Uint8Array, perItem: SAMPLES },
      phi,
      networks: { classifier: vit.outputs.logits, clip: clip.outputs.features, lpips },
      seed: SEED,
      trials: 200,
    });
    cstar = argmaxRows(
      itemsOf(Float64Array.from((await vit.outputs.logits!(gt)).data as Float32Array), ITEMS, [1000]),
    );
  } finally {
    for (const o of [vit, clip, lpips, phi]) o.dispose();
  }
  // the draws the metric made, for the reference to replay
  const draws = Array.from({ length: SAMPLES }, (_, s) =>
    drawDistractors(cstar, 1000, { n: 50, trials: 200, rng: nWayRng(SEED, 'decode.nway50', s) }),
  );
  const all = new Int32Array(SAMPLES * draws[0]!.length);
  draws.forEach((d, s) => all.set(d, s * d.length));
  await writeNpy(join(dir, 'draws.npy'), { dtype: 'int32', shape: [SAMPLES, ITEMS, 200, 49], data: all });
  const ref = JSON.parse(runOracle(TRANSCRIPTION, [dir, String(ITEMS), String(SAMPLES)])) as {
    nway50: number[];
    clip: number[];
    psm: number[];
    cstar: number[];
  };
  assert.deepEqual(Array.from(cstar), ref.cstar, "c* = the classifier's argmax on the ground truths");
  const byName = new Map(rows.map((r) => [r.name, r]));
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  for (const [name, want] of [
    ['decode.nway50', ref.nway50],
    ['decode.clip_twoway', ref.clip],
    ['decode.twoway_psm', ref.psm],
  ] as const) {
    const r = byName.get(name);
    assert.ok(r, `${name} computed`);
    t.diagnostic(`${name}: ${r.value} (reference ${mean(want)}), chance ${r.chance}`);
    assert.ok(Math.abs(r.value - mean(want)) < 1e-12, `${name}: ${r.value} vs ${mean(want)}`);
    assert.ok(Math.abs(r.min! - Math.min(...want)) < 1e-12);
    assert.ok(metricDefinition(name)?.paper, `${name} is a paper metric`);
  }
  // the stand-ins are there under their own names, never under the paper's
  assert.ok(byName.has('decode.phi_twoway') && byName.has('decode.fid_phi'));
  assert.ok(!byName.has('decode.fid'), 'no FID without the Inception network');
  const nway = byName.get('decode.nway50')!;
  // measured on mismatched items: a random classifier that favours a few classes is far from 1/50
  assert.ok(nway.chance! > 0.02 && nway.chance! < nway.value, `measured 50-way chance ${nway.chance}`);
  assert.ok(byName.has('ref.shuffled.decode.nway50'));
});

test('CLIP 2-way equals spec §5.5 exactly on the reference features', async () => {
  const feats = await readNpy(join(dir, 'clip.npy'));
  const f = feats.data as Float64Array;
  const d = feats.shape[1]!;
  const g = itemsOf(f.slice(0, ITEMS * d), ITEMS, [d]);
  const p = new Float64Array(ITEMS * d);
  for (let i = 0; i < ITEMS; i++)
    p.set(f.subarray((ITEMS + i * SAMPLES) * d, (ITEMS + i * SAMPLES + 1) * d), i * d);
  const ours = featureTwoWay(itemsOf(p, ITEMS, [d]), g).value;
  const ref = JSON.parse(
    runOracle(
      TRANSCRIPTION.replace("draws = np.load(f'{out}/draws.npy')", 'draws = np.zeros((2, 8, 1, 49), int)'),
      [dir, String(ITEMS), String(SAMPLES)],
    ),
  ) as {
    clip: number[];
  };
  assert.equal(ours, ref.clip[0]);
  // a derangement never leaves an item paired with itself
  const p2 = derangement(ITEMS, nWayRng(1, 'x', 0));
  assert.ok(Array.from(p2).every((j, i) => j !== i));
});
