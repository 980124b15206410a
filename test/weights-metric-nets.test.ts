/**
 * The metric networks of spec §5 imported from their upstream files match the reference packages on fixed
 * images: LPIPS (torchvision alexnet + lpips 0.1's alex.pth heads) as lpips.LPIPS(net='alex') computes it, to
 * 1e-4; torch-fidelity's InceptionV3 features (both resizes) and FID as torchmetrics'
 * FrechetInceptionDistance(feature=64) computes it, to 1e-3 relative. The references run with random
 * backbone weights (nothing can be downloaded), saved with torch.save exactly as upstream ships them; the
 * lpips heads are the real ones from its wheel. Every file is full size, so the key/shape tables are checked
 * against the references' too.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { initCompute } from '../lib/compute/backend.js';
import { BadInputError } from '../lib/errors.js';
import { inceptionFid64 } from '../lib/metrics/fid.js';
import { Lpips } from '../lib/metrics/lpips.js';
import type { ImageBatch } from '../lib/models/image-features.js';
import { InceptionV3 } from '../lib/models/inception-v3.js';
import { readNpy } from '../lib/tensors/npy.js';
import type { NdArray } from '../lib/tensors/ndarray.js';
import type { WeightKind } from '../lib/weights/kind.js';
import { fidInceptionV3Kind } from '../lib/weights/kinds/fid-inception-v3.js';
import { lpipsAlexKind } from '../lib/weights/kinds/lpips-alex.js';
import { torchvisionAlexnetKind } from '../lib/weights/kinds/torchvision-alexnet.js';
import type { CheckpointSource } from '../lib/weights/source.js';
import { openCheckpoint } from '../lib/weights/open.js';
import { runOracle } from './helpers/oracle.js';
import { maxRelError } from './helpers/compare.js';

const refsDir = fileURLToPath(new URL('./oracles', import.meta.url));

/**
 * Writes alexnet.pth, lpips-alex.pth, inception.pth, the images (uint8 NHWC .npy) and the reference values;
 * prints each file's {name: shape} table as JSON.
 */
const REFERENCE = String.raw`
import sys, json, warnings, numpy as np, torch
warnings.filterwarnings('ignore')  # lpips calls torchvision's deprecated alexnet(pretrained=...)
out = sys.argv[1]; sys.path.insert(0, sys.argv[2])
from refs import import_torchvision, lpips_alex_heads, random_fid_inception
tv = import_torchvision()
import lpips
import torch_fidelity.feature_extractor_inceptionv3 as fe
from torchmetrics.image.fid import FrechetInceptionDistance
torch.manual_seed(13); rng = np.random.default_rng(13); torch.set_num_threads(2)
tables = {}

def images(n, size):  # smooth structure (upsampled 4x4 noise) plus pixel noise, uint8 NHWC
    low = rng.uniform(0, 255, (n, 4, 4, 3))
    big = np.repeat(np.repeat(low, size // 4, 1), size // 4, 2)
    return np.clip(big + rng.normal(0, 30, big.shape), 0, 255).astype(np.uint8)

def nchw(u8): return torch.from_numpy(u8).permute(0, 3, 1, 2).contiguous()

# LPIPS: torchvision alexnet (random) as the backbone, the wheel's alex.pth heads
alex = tv.models.alexnet(weights=None).eval()
torch.save(alex.state_dict(), f'{out}/alexnet.pth')
tables['alexnet'] = {k: list(v.shape) for k, v in alex.state_dict().items()}
lp = lpips.LPIPS(net='alex', version='0.1', pretrained=True, pnet_rand=True, verbose=False).eval()
taps = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}
sd = {f'net.slice{taps[i]}.{i}.{p}': alex.state_dict()[f'features.{i}.{p}'] for i in taps for p in ('weight', 'bias')}
missing = lp.load_state_dict(sd, strict=False)
assert not missing.unexpected_keys, missing
import shutil
heads_file = lpips_alex_heads()
heads = torch.load(heads_file, map_location='cpu')
shutil.copyfile(heads_file, f'{out}/lpips-alex.pth')  # imported exactly as the wheel ships it
tables['lpips'] = {k: list(v.shape) for k, v in heads.items()}
a = images(6, 64); b = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
b[3:] = images(3, 64)
np.save(f'{out}/lp-a.npy', a); np.save(f'{out}/lp-b.npy', b)
ta = nchw(a).float() / 255 * 2 - 1; tb = nchw(b).float() / 255 * 2 - 1
with torch.no_grad():
    n = len(a)
    m = lp(ta.repeat_interleave(n, 0), tb.repeat(n, 1, 1, 1)).reshape(n, n)
np.save(f'{out}/lp-matrix.npy', m.double().numpy())

net = random_fid_inception()
torch.save(net.state_dict(), f'{out}/inception.pth')
tables['inception'] = {k: list(v.shape) for k, v in net.state_dict().items()}

real = images(80, 32); fake = np.clip(real.astype(int) // 2 + images(80, 32) // 2 + 20, 0, 255).astype(np.uint8)
np.save(f'{out}/fid-real.npy', real); np.save(f'{out}/fid-fake.npy', fake)
fid = FrechetInceptionDistance(feature=64, feature_extractor_weights_path=f'{out}/inception.pth')
for s in range(0, 80, 20):
    fid.update(nchw(real[s:s + 20]), real=True); fid.update(nchw(fake[s:s + 20]), real=False)
np.save(f'{out}/fid.npy', np.array(fid.compute().item(), dtype=np.float64))
with torch.no_grad():
    np.save(f'{out}/f64-antialias.npy', fid.inception(nchw(real[:4])).numpy())
    big = rng.integers(0, 256, (2, 336, 320, 3), dtype=np.uint8)  # shrinking, non-square
    np.save(f'{out}/big.npy', big); np.save(f'{out}/f64-antialias-big.npy', fid.inception(nchw(big)).numpy())
    tf1 = fe.FeatureExtractorInceptionV3('inception-v3-compat', ['64', '2048'], feature_extractor_weights_path=f'{out}/inception.pth')
    f64, f2048 = tf1(nchw(fake[:2]))
np.save(f'{out}/f64-tf1.npy', f64.numpy()); np.save(f'{out}/f2048-tf1.npy', f2048.numpy())
print(json.dumps(tables))
`;

let dir: string;
let tables: Record<string, Record<string, number[]>>;
before(async () => {
  await initCompute();
  dir = await mkdtemp(join(tmpdir(), 'lea-metric-nets-'));
  tables = JSON.parse(runOracle(REFERENCE, [dir, refsDir])) as typeof tables;
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function npy(name: string): Promise<NdArray> {
  return readNpy(join(dir, `${name}.npy`));
}

async function batch(name: string): Promise<ImageBatch> {
  const a = await npy(name);
  const [count, height, width] = a.shape as [number, number, number];
  return { data: a.data as Uint8Array, count, height, width };
}

async function importFile(kind: WeightKind, file: string) {
  const src = await openCheckpoint(join(dir, file), kind.entry ? { entry: kind.entry } : {});
  try {
    return await kind.importFrom(src, {});
  } finally {
    await src.close();
  }
}

/** Source names the import left unused must be exactly the reference's tensors outside `imported`. */
function assertTable(
  table: Record<string, number[]>,
  unused: string[],
  tensors: Map<string, NdArray>,
  toProject: (name: string, shape: number[]) => [string, number[]] | undefined,
): void {
  const expectUnused: string[] = [];
  for (const [name, shape] of Object.entries(table)) {
    const mapped = toProject(name, shape);
    if (!mapped) {
      expectUnused.push(name);
      continue;
    }
    assert.deepEqual(tensors.get(mapped[0])?.shape, mapped[1], name);
  }
  assert.deepEqual([...unused].sort(), expectUnused.sort());
  assert.equal(tensors.size, Object.keys(table).length - expectUnused.length);
}

const convLayout = (shape: number[]): number[] =>
  shape.length === 4 ? [shape[2]!, shape[3]!, shape[1]!, shape[0]!] : shape;

test('LPIPS (torchvision alexnet + lpips alex.pth heads) matches lpips.LPIPS to 1e-4; full-size tables', async (t) => {
  const alex = await importFile(torchvisionAlexnetKind, 'alexnet.pth');
  const heads = await importFile(lpipsAlexKind, 'lpips-alex.pth');
  assert.deepEqual(alex.config, torchvisionAlexnetKind.fullSize);
  assert.deepEqual(heads.config, lpipsAlexKind.fullSize);
  assertTable(tables.alexnet!, alex.unused, alex.tensors, (n, s) =>
    n.startsWith('features.') ? [n, convLayout(s)] : undefined,
  );
  assertTable(tables.lpips!, heads.unused, heads.tensors, (n, s) => [n, convLayout(s)]);

  const lpips = new Lpips(alex.tensors, heads.tensors, 'test');
  const a = await batch('lp-a');
  const b = await batch('lp-b');
  const want = (await npy('lp-matrix')).data as Float64Array;
  const n = a.count;
  const matrix = await lpips.matrix(a, b);
  const paired = await lpips.distances(a, b);
  lpips.dispose();
  let worst = 0;
  for (let i = 0; i < n * n; i++) worst = Math.max(worst, Math.abs(matrix[i]! - want[i]!));
  for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(paired[i]! - want[i * n + i]!));
  t.diagnostic(
    `LPIPS max abs error ${worst.toExponential(2)} over values ${Math.min(...want).toFixed(3)}..${Math.max(...want).toFixed(3)}`,
  );
  assert.ok(worst < 1e-4, `LPIPS max abs error ${worst}`);
});

test('torch-fidelity InceptionV3 features (both resizes) and torchmetrics FID(feature=64) match; full-size table', async (t) => {
  const imported = await importFile(fidInceptionV3Kind, 'inception.pth');
  assert.deepEqual(imported.config, fidInceptionV3Kind.fullSize);
  assertTable(tables.inception!, imported.unused, imported.tensors, (n, s) =>
    n.startsWith('fc.') || n.endsWith('num_batches_tracked') ? undefined : [n, convLayout(s)],
  );
  const net = new InceptionV3(imported.tensors, 'test');
  try {
    const real = await batch('fid-real');
    const fake = await batch('fid-fake');
    const first = (x: ImageBatch, n: number): ImageBatch => ({
      ...x,
      count: n,
      data: x.data.subarray(0, n * x.height * x.width * 3),
    });
    const errors: Record<string, number> = {};
    const check = async (what: string, got: Promise<NdArray>): Promise<void> => {
      errors[what] = maxRelError((await got).data as Float32Array, (await npy(what)).data as Float32Array);
    };
    await check('f64-antialias', net.features(first(real, 4), 64));
    await check('f64-antialias-big', net.features(await batch('big'), 64));
    await check('f64-tf1', net.features(first(fake, 2), 64, 'tf1'));
    await check('f2048-tf1', net.features(first(fake, 2), 2048, 'tf1'));
    const fid = await inceptionFid64(real, fake, net);
    const want = Number((await npy('fid')).data[0]);
    errors.fid = Math.abs(fid.value - want) / want;
    t.diagnostic(`relative errors ${JSON.stringify(errors)}; FID ${fid.value} vs torchmetrics ${want}`);
    for (const [what, e] of Object.entries(errors))
      assert.ok(e < (what === 'fid' ? 1e-3 : 1e-4), `${what}: relative error ${e}`);
  } finally {
    net.dispose();
  }
});

test('metric-network files with a wrong or missing tensor are refused naming the file and the tensor', async () => {
  const source = (path: string, shapes: [string, number[]][]): CheckpointSource => ({
    path,
    format: 'torch-zip',
    tensors: new Map(
      shapes.map(([name, shape]) => [
        name,
        { name, dtype: 'float32', shape, read: () => Promise.reject(new Error('never read')) },
      ]),
    ),
    extras: {},
    close: async () => {},
  });
  const heads = source(
    'heads.pth',
    [0, 1, 2, 3, 4].map((k) => [`lin${k}.model.1.weight`, [1, 64, 1, 1]]),
  );
  await assert.rejects(lpipsAlexKind.importFrom(heads, {}), (e: Error) => {
    assert.ok(e instanceof BadInputError);
    assert.match(
      e.message,
      /heads\.pth: tensor 'lin1\.model\.1\.weight' has shape \[1, 64, 1, 1\], expected \[1, 192, 1, 1\]/,
    );
    return true;
  });
  const inception = source('inception.pth', [['Conv2d_1a_3x3.conv.weight', [32, 3, 3, 3]]]);
  await assert.rejects(fidInceptionV3Kind.importFrom(inception, {}), (e: Error) => {
    assert.ok(e instanceof BadInputError);
    assert.match(e.message, /inception\.pth: has no tensor 'Conv2d_1a_3x3\.bn\.weight'/);
    return true;
  });
});
