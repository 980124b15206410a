/**
 * Metrics against independent references: skimage's structural_similarity, scipy.stats.pearsonr, a
 * NumPy/SciPy (sqrtm) Fréchet distance, and the authors' eval_metrics.py helpers transcribed in NumPy
 * (pair_wise_score2, clip_metric). Then properties: identical predictions score the maximum, shuffled
 * ones score near chance over many seeds, and bad input is a clear BadInputError.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Rng } from '../lib/compute/rng.js';
import { BadInputError } from '../lib/errors.js';
import { itemsFrom, itemsOf, overSamples, type Items } from '../lib/metrics/common.js';
import {
  encodingTwoWay,
  meanSquaredError,
  perSamplePearson,
  perVoxelPearson,
} from '../lib/metrics/encoding.js';
import { frechetDistance } from '../lib/metrics/fid.js';
import {
  featureTwoWay,
  mse,
  mseUint8Wrap,
  snrUint8Wrap,
  twoWayFromMatrix,
  twoWayIdentification,
  twoWayLpips,
} from '../lib/metrics/identification.js';
import { argmaxRows, nWayTop1 } from '../lib/metrics/nway.js';
import { ssim, ssimPerImage, ssimStack } from '../lib/metrics/ssim.js';
import { ndarray } from '../lib/tensors/ndarray.js';
import { readNpy } from '../lib/tensors/npy.js';
import { runOracle } from './helpers/oracle.js';

const ORACLE = `
import json, sys, numpy as np, scipy.linalg
from scipy.stats import pearsonr
from skimage.metrics import structural_similarity
out = sys.argv[1]
rng = np.random.default_rng(7)
ref = {}
def save(name, a): np.save(f"{out}/{name}.npy", a)

# images: smooth structure plus noise, predictions a noisy copy, uint8
def images(n, h, w, c):
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 100*np.sin(xx/(3+i%4) + yy/(5+i%3) + k) for i in range(n) for k in range(c)]).reshape(n, c, h, w).transpose(0, 2, 3, 1)
    t = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    p = np.clip(t + rng.normal(0, 40, t.shape), 0, 255).astype(np.uint8)
    return p, t
for name, shape in [('rgb', (8, 32, 40, 3)), ('gray', (7, 9, 7, 1)), ('tall', (9, 48, 16, 3))]:
    p, t = images(*shape)
    save(f"ssim-{name}-pred", p); save(f"ssim-{name}-target", t)
    per = [structural_similarity(p[i], t[i], data_range=255, channel_axis=-1) for i in range(len(p))]
    ref[f"ssim-{name}"] = dict(per=per, stack=structural_similarity(p, t, data_range=255, channel_axis=-1))
# float64 images as well (skimage computes these in float64 too)
pf = rng.uniform(0, 255, (7, 12, 11, 3)); tf_ = np.clip(pf + rng.normal(0, 30, pf.shape), 0, 255)
save("ssim-float-pred", pf); save("ssim-float-target", tf_)
ref["ssim-float"] = dict(per=[structural_similarity(pf[i], tf_[i], data_range=255, channel_axis=-1) for i in range(7)],
                         stack=structural_similarity(pf, tf_, data_range=255, channel_axis=-1))

# pixel 2-way: the authors' pair_wise_score2 with their metric functions, on float images
def pair_wise(pred, gt, metric, better):
    scores = []
    for i, p in enumerate(pred):
        own = metric(p, gt[i]); rest = [g for j, g in enumerate(gt) if j != i]
        scores.append(sum(better(own, metric(p, g)) for g in rest) / len(rest))
    return float(np.mean(scores))
mse = lambda a, b: np.square(a - b).mean()
pcc = lambda a, b: np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1]
snr = lambda a, b: 10 * np.log10(np.sum(b ** 2) / np.sum((a - b) ** 2))
gt = rng.uniform(0, 255, (12, 6, 5, 3)); pr = gt + rng.normal(0, 90, gt.shape)
save("pix-pred", pr); save("pix-target", gt)
ref["pix"] = dict(mse=pair_wise(pr, gt, mse, lambda a, b: a < b), pcc=pair_wise(pr, gt, pcc, lambda a, b: a > b),
                  snr=pair_wise(pr, gt, snr, lambda a, b: a > b))

# feature 2-way: the authors' clip_metric
def clip_metric(pred, gt):
    r = np.corrcoef(gt, pred)[:len(gt), len(gt):]
    return float(np.mean(np.sum(r < np.diag(r), 0)) / (len(gt) - 1))
fg = rng.standard_normal((15, 32)); fp = fg + 1.5 * rng.standard_normal(fg.shape)
save("feat-pred", fp); save("feat-target", fg)
ref["feat"] = clip_metric(fp, fg)

# encoding: scipy.stats.pearsonr per item and per voxel, MSE
vt = rng.standard_normal((20, 300)) + rng.standard_normal(300); vp = 0.6 * vt + 0.8 * rng.standard_normal(vt.shape)
save("vox-pred", vp); save("vox-target", vt)
ref["vox"] = dict(per_item=[pearsonr(vp[i], vt[i]).statistic for i in range(20)],
                  per_voxel=[pearsonr(vp[:, v], vt[:, v]).statistic for v in range(300)],
                  mse=float(np.mean((vp - vt) ** 2)),
                  chance_r=float(np.mean([pearsonr(vp[i], vt[j]).statistic for i in range(20) for j in range(20) if i != j])))

# Fréchet distance, the usual NumPy/SciPy recipe
def fid(a, b):
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cm = scipy.linalg.sqrtm(s1 @ s2)
    cm = (cm[0] if isinstance(cm, tuple) else cm).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(cm))
ref["fid"] = {}
for name, (n1, n2, d) in dict(small=(200, 150, 16), wide=(120, 100, 64), inception64=(500, 400, 64), singular=(40, 50, 64)).items():
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    a = rng.standard_normal((n1, d)) @ mix + 0.5; b = rng.standard_normal((n2, d)) @ (mix + 0.3 * np.eye(d))
    save(f"fid-{name}-a", a); save(f"fid-{name}-b", b)
    ref["fid"][name] = fid(a, b)
print(json.dumps(ref))
`;

let dir = '';
let ref: {
  [k: `ssim-${string}`]: { per: number[]; stack: number };
  pix: { mse: number; pcc: number; snr: number };
  feat: number;
  vox: { per_item: number[]; per_voxel: number[]; mse: number; chance_r: number };
  fid: Record<string, number>;
};

async function load(name: string): Promise<Items> {
  return itemsFrom(await readNpy(join(dir, `${name}.npy`)), name);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i]! - b[i]!));
  return e;
}

function randomItems(rng: Rng, count: number, itemShape: number[], scale = 1): Items {
  const size = itemShape.reduce((a, b) => a * b, 1);
  return itemsOf(
    Float64Array.from({ length: count * size }, () => rng.normal(0, scale)),
    count,
    itemShape,
  );
}

function shuffled(items: Items, rng: Rng): Items {
  const perm = rng.permutation(items.count);
  const data = new Float64Array(items.data.length);
  perm.forEach((src, dst) =>
    data.set(items.data.subarray(src * items.size, (src + 1) * items.size), dst * items.size),
  );
  return itemsOf(data, items.count, items.itemShape);
}

describe('metrics against independent references', () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lea-metrics-'));
    ref = JSON.parse(runOracle(ORACLE, [dir])) as typeof ref;
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const name of ['rgb', 'gray', 'tall', 'float']) {
    it(`SSIM per image and whole-stack match skimage (${name})`, async (t) => {
      const pred = await load(`ssim-${name}-pred`);
      const target = await load(`ssim-${name}-target`);
      const r = ref[`ssim-${name}`]!;
      const per = ssimPerImage(pred, target);
      const stack = ssimStack(pred, target);
      t.diagnostic(
        `per-image max |diff| ${maxAbsDiff(per.perItem, r.per)}, stack |diff| ${Math.abs(stack.value - r.stack)}`,
      );
      assert.ok(maxAbsDiff(per.perItem, r.per) < 1e-6);
      assert.ok(Math.abs(stack.value - r.stack) < 1e-6);
      assert.equal(stack.chance, null);
    });
  }

  it('pixel 2-way identification matches the authors pair_wise_score2 for mse, pcc and snr', async () => {
    const pred = await load('pix-pred');
    const target = await load('pix-target');
    for (const m of ['mse', 'pcc', 'snr'] as const) {
      const r = twoWayIdentification(pred, target, m);
      assert.ok(Math.abs(r.value - ref.pix[m]) < 1e-12, `${m}: ${r.value} vs ${ref.pix[m]}`);
      assert.equal(r.chance, 0.5);
    }
  });

  it("mse and snr on wrapped uint8 are the authors' mse_metric and snr_metric given numpy uint8 arrays", () => {
    const rng = new Rng(31);
    const [n, size] = [6, 48];
    const pixels = () => Float64Array.from({ length: n * size }, () => Math.floor(rng.uniform() * 256));
    const pred = pixels();
    const target = pixels();
    const measures = ['mse_uint8wrap', 'snr_uint8wrap'] as const;
    const got = Object.fromEntries(
      measures.map((m) => [m, twoWayIdentification(itemsOf(pred, n, [size]), itemsOf(target, n, [size]), m)]),
    );
    // eval_metrics.py's functions, verbatim, and pair_wise_score2's count
    const want = JSON.parse(
      runOracle(
        `
import json, math, sys, numpy as np
def snr_metric(img1, img2):
    noise_signal = img1 - img2
    clean_signal = img2
    sum1 = np.sum(clean_signal ** 2)
    sum2 = np.sum(noise_signal ** 2)
    return 10 * math.log10(sum1 / sum2)
def mse_metric(img1, img2):
    return (np.square(img1 - img2)).mean()
n, size = ${n}, ${size}
pred, gt = (np.array(json.loads(a), dtype=np.uint8).reshape(n, size) for a in sys.argv[1:3])
def two_way(metric, is_success):
    m = np.array([[metric(p, g) for g in gt] for p in pred])
    return [sum(is_success(m[i, i], m[i, j]) for j in range(n) if j != i) / (n - 1) for i in range(n)]
print(json.dumps({'mse_uint8wrap': two_way(mse_metric, lambda a, b: a < b),
                  'snr_uint8wrap': two_way(snr_metric, lambda a, b: a > b),
                  'mse_pair': float(mse_metric(pred[0], gt[1])), 'snr_pair': snr_metric(pred[0], gt[1])}))
`,
        [JSON.stringify(Array.from(pred)), JSON.stringify(Array.from(target))],
      ),
    ) as Record<(typeof measures)[number], number[]> & { mse_pair: number; snr_pair: number };
    for (const m of measures) assert.deepEqual(got[m]!.perItem, want[m], m);
    const [p0, g1] = [pred.subarray(0, size), target.subarray(size, 2 * size)];
    assert.ok(Math.abs(mseUint8Wrap(p0, g1) - want.mse_pair) < 1e-12);
    assert.ok(Math.abs(snrUint8Wrap(p0, g1) - want.snr_pair) < 1e-12);
    // the wrap changes the numbers: the two readings of the paper's column differ
    assert.ok(Math.abs(mse(p0, g1) - want.mse_pair) > 1, `${mse(p0, g1)} vs ${want.mse_pair}`);
  });

  it('feature 2-way matches the authors clip_metric', async () => {
    const r = featureTwoWay(await load('feat-pred'), await load('feat-target'));
    assert.ok(Math.abs(r.value - ref.feat) < 1e-12, `${r.value} vs ${ref.feat}`);
  });

  it('encoding Pearson r (per sample, per voxel) matches scipy.stats.pearsonr, MSE matches NumPy', async (t) => {
    const pred = await load('vox-pred');
    const target = await load('vox-target');
    const ps = perSamplePearson(pred, target);
    const pv = perVoxelPearson(pred, target);
    t.diagnostic(
      `per-sample max |diff| ${maxAbsDiff(ps.perItem, ref.vox.per_item)}, per-voxel ${maxAbsDiff(pv.perVoxel, ref.vox.per_voxel)}`,
    );
    assert.ok(maxAbsDiff(ps.perItem, ref.vox.per_item) < 1e-12);
    assert.ok(maxAbsDiff(pv.perVoxel, ref.vox.per_voxel) < 1e-12);
    assert.ok(Math.abs(ps.chance! - ref.vox.chance_r) < 1e-12);
    assert.equal(pv.chance, 0);
    assert.ok(Math.abs(meanSquaredError(pred, target).value - ref.vox.mse) < 1e-12);
    const two = encodingTwoWay(pred, target);
    assert.ok(two.value > 0.9 && two.chance === 0.5);
  });

  // 'singular': fewer rows than dimensions, so both covariances are rank-deficient
  for (const name of ['small', 'wide', 'inception64', 'singular']) {
    it(`Fréchet distance matches the NumPy/SciPy sqrtm recipe (${name})`, async (t) => {
      const r = frechetDistance(await load(`fid-${name}-a`), await load(`fid-${name}-b`));
      const expected = ref.fid[name]!;
      t.diagnostic(`ours ${r.value}, scipy ${expected}, |diff| ${Math.abs(r.value - expected)}`);
      assert.ok(Math.abs(r.value - expected) < 1e-4 * Math.max(1, Math.abs(expected)));
      assert.ok(Math.abs(r.meanTerm + r.covarianceTerm - r.value) < 1e-9);
    });
  }
});

/** Exact success probability of one n-way item: all n − 1 distractors come from classes not above p[c*]. */
function exactNWay(row: Float64Array, target: number, n: number): number {
  let m = 0;
  for (let c = 0; c < row.length; c++) if (c !== target && row[c]! <= row[target]!) m++;
  let p = 1;
  for (let k = 0; k < n - 1; k++) p *= (m - k) / (row.length - 1 - k);
  return Math.max(p, 0);
}

describe('metric properties', () => {
  it('n-way top-1 is unbiased against its exact hypergeometric success probability', () => {
    const rng = new Rng(1, 'nway');
    const probs = randomItems(rng, 30, [16]);
    const target = Int32Array.from({ length: 30 }, (_, i) => i % 16);
    const r = nWayTop1(probs, target, { n: 5, trials: 1000, rng });
    let expected = 0;
    for (let i = 0; i < 30; i++)
      expected += exactNWay(probs.data.subarray(i * 16, (i + 1) * 16), target[i]!, 5) / 30;
    // 30 items x 1000 trials: the mean's standard error is below 0.003
    assert.ok(Math.abs(r.value - expected) < 0.012, `${r.value} vs ${expected}`);
    // chance: the same exact expectation over mismatched items (item i's probabilities, item j's c*)
    let mismatched = 0;
    for (let i = 0; i < 30; i++)
      for (let j = 0; j < 30; j++)
        if (j !== i) mismatched += exactNWay(probs.data.subarray(i * 16, (i + 1) * 16), target[j]!, 5) / 870;
    assert.ok(Math.abs(r.chance! - mismatched) < 1e-12, `${r.chance} vs ${mismatched}`);
    assert.equal(r.perItem.length, 30);
  });

  it('identical predictions and targets score the maximum', () => {
    const rng = new Rng(2, 'identical');
    const imgs = itemsOf(
      Float64Array.from({ length: 8 * 10 * 10 * 3 }, () => rng.integer(0, 256)),
      8,
      [10, 10, 3],
    );
    const vox = randomItems(rng, 10, [50]);
    for (const m of ['mse', 'pcc', 'snr'] as const)
      assert.equal(twoWayIdentification(imgs, imgs, m).value, 1);
    assert.equal(featureTwoWay(vox, vox).value, 1);
    assert.equal(encodingTwoWay(vox, vox).value, 1);
    assert.ok(Math.abs(ssimPerImage(imgs, imgs).value - 1) < 1e-12);
    assert.ok(Math.abs(ssimStack(imgs, imgs).value - 1) < 1e-12);
    assert.ok(Math.abs(perSamplePearson(vox, vox).value - 1) < 1e-12);
    assert.ok(Math.abs(perVoxelPearson(vox, vox).value - 1) < 1e-12);
    assert.equal(meanSquaredError(vox, vox).value, 0);
    const features = randomItems(rng, 60, [8]); // more rows than dimensions: a full-rank covariance
    assert.ok(Math.abs(frechetDistance(features, features).value) < 1e-9);
    const probs = randomItems(rng, 12, [20]);
    assert.equal(nWayTop1(probs, argmaxRows(probs), { n: 20, trials: 50, rng }).value, 1);
  });

  it('shuffled predictions score near chance over many seeds', () => {
    const seeds = 40;
    const sums = { mse: 0, pcc: 0, snr: 0, feature: 0, encoding: 0, voxel: 0, nway: 0 };
    for (let s = 0; s < seeds; s++) {
      const rng = new Rng(s, 'shuffled');
      const target = randomItems(rng, 12, [60], 3);
      // predictions carry their own target's signal, then lose the pairing
      const pred = shuffled(
        itemsOf(
          target.data.map((v) => v + rng.normal(0, 2)),
          12,
          [60],
        ),
        rng,
      );
      for (const m of ['mse', 'pcc', 'snr'] as const)
        sums[m] += twoWayIdentification(pred, target, m).value / seeds;
      sums.feature += featureTwoWay(pred, target).value / seeds;
      sums.encoding += encodingTwoWay(pred, target).value / seeds;
      sums.voxel += perVoxelPearson(pred, target).value / seeds;
      const probs = randomItems(rng, 10, [16]);
      const classes = Int32Array.from({ length: 10 }, () => rng.integer(0, 16));
      sums.nway += nWayTop1(probs, classes, { n: 4, trials: 200, rng }).value / seeds;
    }
    for (const m of ['mse', 'pcc', 'snr', 'feature', 'encoding'] as const) {
      assert.ok(Math.abs(sums[m] - 0.5) < 0.06, `${m}: ${sums[m]}`);
    }
    assert.ok(Math.abs(sums.voxel) < 0.05, `per-voxel r ${sums.voxel}`);
    assert.ok(Math.abs(sums.nway - 0.25) < 0.04, `4-way ${sums.nway}`);
  });

  it('per-sample r and MSE report the mismatched-pair level as chance', () => {
    const rng = new Rng(3, 'chance');
    const target = randomItems(rng, 9, [40]);
    const pred = itemsOf(
      target.data.map((v) => v + rng.normal(0, 1)),
      9,
      [40],
    );
    const r = perSamplePearson(pred, target);
    let mismatched = 0;
    for (let i = 0; i < 9; i++)
      for (let j = 0; j < 9; j++)
        if (i !== j)
          mismatched +=
            perSamplePearson(
              itemsOf(pred.data.slice(i * 40, i * 40 + 40), 1, [40]),
              itemsOf(target.data.slice(j * 40, j * 40 + 40), 1, [40]),
            ).value / 72;
    assert.ok(Math.abs(r.chance! - mismatched) < 1e-12);
    assert.ok(meanSquaredError(pred, target).chance! > meanSquaredError(pred, target).value);
  });

  it('per-image SSIM chance is the mean over all mismatched pairs when there are few items', () => {
    const rng = new Rng(6, 'ssim-chance');
    const imgs = (n: number) =>
      itemsOf(
        Float64Array.from({ length: n * 9 * 8 * 2 }, () => rng.integer(0, 256)),
        n,
        [9, 8, 2],
      );
    const pred = imgs(5);
    const target = imgs(5);
    let all = 0;
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 5; j++)
        if (i !== j)
          all +=
            ssim(
              pred.data.subarray(i * 144, (i + 1) * 144),
              target.data.subarray(j * 144, (j + 1) * 144),
              [9, 8],
              2,
            ) / 20;
    }
    const r = ssimPerImage(pred, target);
    assert.equal(r.chancePairs, 20);
    assert.ok(Math.abs(r.chance! - all) < 1e-12);
    assert.equal(ssimPerImage(imgs(12), imgs(12)).chancePairs, 48);
  });

  it('LPIPS 2-way uses the supplied distance network, lower is better', async () => {
    const rng = new Rng(4, 'lpips');
    const target = randomItems(rng, 6, [4, 4, 3]);
    const r = await twoWayLpips(target, target, async (a, b) =>
      Math.sqrt(a.reduce((s, v, k) => s + (v - b[k]!) ** 2, 0)),
    );
    assert.equal(r.value, 1);
    const m = Float64Array.from([0, 1, 2, 0.5, 0, 3, 1, 1, 1]);
    assert.deepEqual(twoWayFromMatrix(m, 3, true).perItem, [1, 1, 0]);
  });

  it('aggregates samples as mean, min and max', () => {
    const agg = overSamples([0.5, 0.7, 0.6, 0.9, 0.8].map((value) => ({ value, chance: 0.5 })));
    assert.ok(Math.abs(agg.value - 0.7) < 1e-12);
    assert.equal(agg.min, 0.5);
    assert.equal(agg.max, 0.9);
    assert.equal(agg.chance, 0.5);
    assert.equal(overSamples([{ value: 1, chance: null }]).chance, null);
  });
});

describe('metrics bad input', () => {
  const a = itemsOf(new Float64Array(12), 3, [4]);
  it('rejects shape mismatches', () => {
    assert.throws(
      () => twoWayIdentification(a, itemsOf(new Float64Array(15), 3, [5]), 'mse'),
      /differ in shape/,
    );
    assert.throws(() => perSamplePearson(a, itemsOf(new Float64Array(8), 2, [4])), BadInputError);
    assert.throws(() => frechetDistance(a, itemsOf(new Float64Array(15), 3, [5])), /feature widths differ/);
  });
  it('rejects NaN and empty arrays', () => {
    assert.throws(
      () => itemsFrom(ndarray('float32', [2, 2], Float32Array.from([1, 2, NaN, 4])), '--pred'),
      /--pred: non-finite value NaN in item 1/,
    );
    assert.throws(() => itemsFrom(ndarray('float64', [0, 4]), '--target'), /--target: empty array/);
  });
  it('rejects n larger than the number of classes, and n < 2', () => {
    const probs = itemsOf(new Float64Array(10), 2, [5]);
    const rng = new Rng(5);
    assert.throws(
      () => nWayTop1(probs, Int32Array.from([0, 1]), { n: 6, rng }),
      /n=6 needs at least 6 classes/,
    );
    assert.throws(() => nWayTop1(probs, Int32Array.from([0, 1]), { n: 1, rng }), /n >= 2/);
    assert.throws(() => nWayTop1(probs, Int32Array.from([0, 7]), { n: 2, rng }), /target class 7/);
  });
  it('rejects constant vectors for Pearson r and too few items for identification', () => {
    const constant = itemsOf(Float64Array.from([1, 1, 1, 1, 0, 1, 2, 3]), 2, [4]);
    assert.throws(() => perSamplePearson(constant, constant), /item 0 is constant/);
    assert.throws(
      () =>
        twoWayIdentification(
          itemsOf(new Float64Array(4), 1, [4]),
          itemsOf(new Float64Array(4), 1, [4]),
          'mse',
        ),
      /at least 2 items/,
    );
  });
  it('rejects images smaller than the SSIM window and stacks of fewer than 7 images', () => {
    const small = itemsOf(new Float64Array(2 * 6 * 8 * 1), 2, [6, 8, 1]);
    assert.throws(() => ssimPerImage(small, small), /window exceeds the extent \[6, 8\]/);
    const few = itemsOf(new Float64Array(3 * 8 * 8 * 1), 3, [8, 8, 1]);
    assert.throws(() => ssimStack(few, few), /ssim-stack/);
    assert.throws(() => ssim(new Float64Array(4), new Float64Array(4), [2, 2], 1), BadInputError);
  });
});
