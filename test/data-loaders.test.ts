/**
 * The GOD and BOLD5000 loaders and `prepare`, on the tiny synthetic world, against an independent numpy
 * re-computation written after LEA's src/dataset.py (first-ten-keys ROI rule, scalar z-scoring, the
 * repeated-stimulus split), plus the synthetic world's determinism and the CLI's flag validation.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, readdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerDataCommands } from '../cli/commands/data.js';
import { loadBold5000 } from '../lib/data/bold5000.js';
import { loadGod } from '../lib/data/god.js';
import type { PrepareMeta, StimuliFile } from '../lib/data/prepare.js';
import { prepareDataset, prepareImages, STIMULI_FILE } from '../lib/data/prepare.js';
import { readNpy } from '../lib/tensors/npy.js';
import { synthesize } from '../lib/data/synth.js';
import { BadInputError } from '../lib/errors.js';
import { runOracle } from './helpers/oracle.js';

let dir: string;
const god = (): string => join(dir, 'god');
const bold = (): string => join(dir, 'bold');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lea-loaders-'));
  await synthesize({ format: 'god', out: god(), seed: 7, scale: 'tiny' });
  await synthesize({ format: 'bold5000', out: bold(), seed: 7, scale: 'tiny' });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Compares a prepared folder with numpy's re-computation; returns the oracle's report. */
function compare(
  script: string,
  dataset: string,
  prepared: string,
  ...args: string[]
): Record<string, unknown> {
  return JSON.parse(runOracle(script + COMPARE, [dataset, prepared, ...args])) as Record<string, unknown>;
}

const COMPARE = `
import sys, json
out = sys.argv[2]
got = {k: np.load(out + '/' + k + '.npy') for k in expected}
meta = json.load(open(out + '/meta.json'))
report = {'shapes': {k: list(v.shape) for k, v in got.items()}, 'dtypes': {k: str(v.dtype) for k, v in got.items()}}
for k, want in expected.items():
    g = got[k]
    if g.shape != want.shape: report[k] = 'shape ' + str(g.shape) + ' vs ' + str(want.shape); continue
    report[k] = float(np.abs(g.astype(np.float64) - want.astype(np.float64)).max()) if g.size else 0.0
report['mean'] = abs(meta['normalisation']['mean'] - float(stats[0])) / abs(float(stats[0]))
report['std'] = abs(meta['normalisation']['std'] - float(stats[1])) / float(stats[1])
report['roi'] = roi_sizes
report['meta_roi'] = meta['roiSizes']
print(json.dumps(report))
`;

/**
 * LEA's create_Kamitani_CLIP_dataset; sys.argv[3] names the test normalisation: upstream (LEA's own lines,
 * normalize(tt, np.mean(tr), np.std(tr)) on the z-scored tr) or train-stats (the raw training scalars).
 */
const GOD_ORACLE = `
import numpy as np, json, csv, os, sys
path = sys.argv[1]
def normalize(x, mean=None, std=None):
    mean = np.mean(x) if mean is None else mean
    std = np.std(x) if std is None else std
    return (x - mean) / (std * 1.0)
npz = dict(np.load(os.path.join(path, 'sbj_1.npz')))
img = dict(np.load(os.path.join(path, 'images_256.npz')))
temp = np.zeros_like(npz['VC'])
tr_list, tt_list, roi_sizes = [], [], []
for k in list(npz.keys())[:10]:
    new_mask = npz[k] ^ (temp * npz[k])
    if new_mask.sum() > 0:
        tr_list.append(npz['arr_0'][..., new_mask]); tt_list.append(npz['arr_2'][..., new_mask]); roi_sizes.append(int(new_mask.sum()))
    temp += npz[k]
tr = np.concatenate(tr_list, axis=1).astype(np.float64)
tt = np.concatenate(tt_list, axis=1).astype(np.float64)
stats = (np.mean(tr), np.std(tr))
if sys.argv[3] == 'upstream':
    tr = normalize(tr)
    tt = normalize(tt, np.mean(tr), np.std(tr))
else:
    tr, tt = normalize(tr), normalize(tt, *stats)
class_index = json.load(open(os.path.join(path, 'imagenet_class_index.json')))
wind = [[int(n[1:]) for n in v[:-1]] for v in class_index.values()]
naive = {}
def labels(file):
    out = []
    for row in csv.reader(open(os.path.join(path, file))):
        name = int(row[0].split('.')[0]); naive[name] = []
        nl = list(naive.keys()).index(name)
        out.append([next((c for c, w in enumerate(wind) if name in w), -1), nl])
    return np.array(out)
train_lb = labels('imagenet_training_label.csv'); test_lb = labels('imagenet_testing_label.csv')
expected = {
    'train_fmri': tr,
    'test_fmri': tt,
    'train_images': img['train_images'][npz['arr_3']],
    'test_images': img['test_images'],
    'train_labels': train_lb[npz['arr_3']],
    'test_labels': test_lb,
}
`;

/** LEA's create_BOLD5000_CLIP_dataset (img_dict read by numpy's own unpickler). */
const BOLD_ORACLE = `
import numpy as np, os, sys
path = sys.argv[1]
sub = 'CSI1'
fmri_path = os.path.join(path, 'BOLD5000_GLMsingle_ROI_betas/py')
img_path = os.path.join(path, 'BOLD5000_Stimuli')
imgs_dict = np.load(os.path.join(img_path, 'Scene_Stimuli/Presented_Stimuli/img_dict.npy'), allow_pickle=True).item()
repeated = np.loadtxt(os.path.join(img_path, 'Scene_Stimuli', 'repeated_stimuli_113_list.txt'), dtype=str)
fmri_files = sorted(f for f in os.listdir(fmri_path) if f.endswith('.npy'))
parts = []
for roi in ['EarlyVis', 'LOC', 'OPA', 'PPA', 'RSC']:
    for npy in fmri_files:
        if sub in npy and roi in npy: parts.append(np.load(os.path.join(fmri_path, npy)))
roi_sizes = [p.shape[1] for p in parts]
roi_sizes = [roi_sizes[i] + roi_sizes[i + 1] for i in range(0, len(roi_sizes), 2)]
x = np.concatenate(parts, axis=-1).astype(np.float64)
stats = (np.mean(x), np.std(x))
x = (x - stats[0]) / stats[1]
names = []
lp = os.path.join(img_path, 'Stimuli_Presentation_Lists', sub)
for folder in sorted(os.listdir(lp)):
    for f in sorted(os.listdir(os.path.join(lp, folder))):
        if f.endswith('.txt'): names += list(np.loadtxt(os.path.join(lp, folder, f), dtype=str))
names = [n.replace('rep_', '', 1) if n.startswith('rep_') else n for n in names]
test_idx = [[i for i, v in enumerate(names) if v == r] for r in repeated]
test_idx = [i for i in test_idx if len(i) > 0]
flat = [t for idx in test_idx for t in idx]
train_idx = [i for i in range(len(names)) if i not in flat]
expected = {
    'train_fmri': x[train_idx],
    'test_fmri': np.stack([x[idx].mean(axis=0) for idx in test_idx]),
    'train_images': np.stack([imgs_dict[names[i]] for i in train_idx]),
    'test_images': np.stack([imgs_dict[names[idx[0]]] for idx in test_idx]),
}
`;

function checkReport(r: Record<string, unknown>, fmriTol: number): void {
  assert.ok((r.train_fmri as number) <= fmriTol, `train_fmri max diff ${String(r.train_fmri)}`);
  assert.ok((r.test_fmri as number) <= fmriTol, `test_fmri max diff ${String(r.test_fmri)}`);
  assert.equal(r.train_images, 0);
  assert.equal(r.test_images, 0);
  assert.ok(
    (r.mean as number) < 1e-9 && (r.std as number) < 1e-9,
    `normalisation ${String(r.mean)} ${String(r.std)}`,
  );
  assert.deepEqual(r.meta_roi, r.roi);
}

describe('GOD loader on the synthetic world', () => {
  it('split sizes, ROI groups, normalisation, images and labels match numpy (LEA rule) to 1e-6', async () => {
    const out = join(dir, 'god-prepared');
    const meta = await prepareDataset({ dataset: 'god', path: god(), subject: 'sbj_1', out });
    assert.equal(meta.K, 256);
    assert.deepEqual(meta.roiNames, ['V1', 'V2', 'V3', 'V4', 'LOC', 'FFA', 'PPA', 'HVC']);
    assert.deepEqual(meta.roiSizes, [40, 40, 32, 32, 24, 24, 16, 48]);
    assert.deepEqual(meta.split, { train: 600, test: 12, testTrialsAveraged: 96 });
    assert.deepEqual(meta.image, { height: 16, width: 16, channels: 3 });
    assert.equal(meta.labels?.unmatchedImagenetClass, 0);
    const r = compare(GOD_ORACLE, god(), out, 'upstream');
    checkReport(r, 1e-6);
    assert.equal(r.train_labels, 0);
    assert.equal(r.test_labels, 0);
    assert.deepEqual(r.shapes, {
      train_fmri: [600, 256],
      test_fmri: [12, 256],
      train_images: [600, 16, 16, 3],
      test_images: [12, 16, 16, 3],
      train_labels: [600, 2],
      test_labels: [12, 2],
    });
    assert.deepEqual(r.dtypes, {
      train_fmri: 'float32',
      test_fmri: 'float32',
      train_images: 'uint8',
      test_images: 'uint8',
      train_labels: 'int64',
      test_labels: 'int64',
    });
    // test categories are disjoint from training ones
    const loaded = await loadGod({ path: god(), subject: 'sbj_1' });
    const cats = (l: BigInt64Array): Set<bigint> =>
      new Set(Array.from({ length: l.length / 2 }, (_, i) => l[2 * i + 1]!));
    const trainCats = cats(loaded.train.labels!.data as BigInt64Array);
    const testCats = cats(loaded.test.labels!.data as BigInt64Array);
    assert.equal(trainCats.size, 12);
    assert.equal(testCats.size, 4);
    assert.ok([...testCats].every((c) => !trainCats.has(c)));
  });

  it("test normalisation: upstream is LEA's code path, train-stats the raw training scalars, and they differ", async () => {
    const prepared: Record<string, Float32Array> = {};
    for (const rule of ['upstream', 'train-stats'] as const) {
      const out = join(dir, `god-test-${rule}`);
      const meta = await prepareDataset({
        dataset: 'god',
        path: god(),
        subject: 'sbj_1',
        out,
        testNormalisation: rule,
      });
      // the fixture's training matrix is not z-scored already, or the two rules would agree
      assert.ok(Math.abs(meta.normalisation.mean) > 0.2, `training mean ${meta.normalisation.mean}`);
      assert.equal(meta.normalisation.test?.rule, rule);
      checkReport(compare(GOD_ORACLE, god(), out, rule), 1e-6);
      prepared[rule] = (await readNpy(join(out, 'test_fmri.npy'))).data as Float32Array;
    }
    const up = prepared.upstream!;
    const ts = prepared['train-stats']!;
    const gap = Math.max(...up.map((v, i) => Math.abs(v - ts[i]!)));
    assert.ok(gap > 0.1, `the rules' test fMRI differ by at most ${gap}`);
  });

  it('meta.json records every source with its sha256', async () => {
    const meta = JSON.parse(await readFile(join(dir, 'god-prepared', 'meta.json'), 'utf8')) as PrepareMeta;
    assert.deepEqual(meta.sources.map((s) => s.path).sort(), [
      'imagenet_class_index.json',
      'imagenet_testing_label.csv',
      'imagenet_training_label.csv',
      'images_256.npz',
      'roi_patch.json',
      'sbj_1.npz',
    ]);
    for (const s of meta.sources) {
      assert.equal(
        s.sha256,
        createHash('sha256')
          .update(await readFile(join(god(), s.path)))
          .digest('hex'),
        s.path,
      );
    }
    assert.deepEqual((await readdir(join(dir, 'god-prepared'))).sort(), [...meta.files].sort());
  });
});

describe('BOLD5000 loader on the synthetic world', () => {
  it('split (113-list rule), ROI order, all-trial normalisation and images match numpy (LEA rule) to 1e-6', async () => {
    const out = join(dir, 'bold-prepared');
    const meta = await prepareDataset({ dataset: 'bold5000', path: bold(), subject: 'CSI1', out });
    assert.equal(meta.K, 256);
    assert.deepEqual(meta.roiNames, ['EarlyVis', 'LOC', 'OPA', 'PPA', 'RSC']);
    assert.deepEqual(meta.roiSizes, [80, 64, 32, 48, 32]);
    // 12 repeated images shown 4 times each; the 13th listed name was never shown and is skipped
    assert.deepEqual(meta.split, { train: 600, test: 12, testTrialsAveraged: 48 });
    assert.equal(meta.labels, null);
    assert.equal(meta.normalisation.statsFrom, 'all_trials');
    const r = compare(BOLD_ORACLE, bold(), out);
    checkReport(r, 1e-6);
    assert.deepEqual(r.shapes, {
      train_fmri: [600, 256],
      test_fmri: [12, 256],
      train_images: [600, 16, 16, 3],
      test_images: [12, 16, 16, 3],
    });
    assert.ok(meta.sources.some((s) => s.path.endsWith('img_dict.npy')));
    assert.ok(meta.sources.filter((s) => s.path.endsWith('.txt')).length === 7); // 6 runs + the repeated list
  });

  it('loadBold5000 returns the same split in memory', async () => {
    const loaded = await loadBold5000({ path: bold(), subject: 'CSI1' });
    assert.deepEqual(loaded.train.fmri.shape, [600, 256]);
    assert.equal(loaded.test.images.count, 12);
    assert.equal(loaded.train.images.row(0).length, 16 * 16 * 3);
  });
});

describe('synthetic world', () => {
  it('is determined by the seed', async () => {
    const digest = async (d: string): Promise<string> => {
      const h = createHash('sha256');
      for (const f of ['images_256.npz', 'sbj_1.npz', 'imagenet_training_label.csv'])
        h.update(await readFile(join(d, f)));
      return h.digest('hex');
    };
    await synthesize({ format: 'god', out: join(dir, 'again'), seed: 7, scale: 'tiny' });
    await synthesize({ format: 'god', out: join(dir, 'other'), seed: 8, scale: 'tiny' });
    assert.equal(await digest(join(dir, 'again')), await digest(god()));
    assert.notEqual(await digest(join(dir, 'other')), await digest(god()));
  });

  it('refuses a non-empty output folder', async () => {
    await assert.rejects(
      synthesize({ format: 'god', out: god(), seed: 1, scale: 'tiny' }),
      (e: Error) => e instanceof BadInputError && /not empty/.test(e.message),
    );
  });
});

describe('several subjects and the image set', () => {
  const worlds = { god: 'god2', bold5000: 'bold2' } as const;
  const subjects = { god: ['sbj_1', 'sbj_2'], bold5000: ['CSI1', 'CSI2'] } as const;

  it('a world of two subjects holds the one-subject world byte for byte, and a second subject of its own', async () => {
    for (const [format, folder] of Object.entries(worlds) as ['god' | 'bold5000', string][]) {
      const s = await synthesize({ format, out: join(dir, folder), seed: 7, scale: 'tiny', subjects: 2 });
      assert.deepEqual(s.subjects, subjects[format]);
      const one = format === 'god' ? god() : bold();
      for (const f of await readdir(one, { recursive: true })) {
        if (f === 'roi_patch.json' || !f.includes('.')) continue; // the ROI table lists both subjects
        assert.ok((await readFile(join(one, f))).equals(await readFile(join(dir, folder, f))), f);
      }
      const [a, b] = await Promise.all(
        subjects[format].map((subject) =>
          (format === 'god' ? loadGod : loadBold5000)({ path: join(dir, folder), subject }),
        ),
      );
      assert.notDeepEqual(a!.roiSizes, b!.roiSizes);
    }
    await assert.rejects(
      synthesize({ format: 'bold5000', out: join(dir, 'bold5'), seed: 7, scale: 'tiny', subjects: 5 }),
      /a synthetic bold5000 world has 1 to 4 subjects, not 5/,
    );
  });

  it("each subject's rows find their own images in the dataset's image set (and in their own)", async () => {
    const npy = async (d: string, f: string) => {
      const a = await readNpy(join(d, f));
      const row = a.shape.slice(1).reduce((x, y) => x * y, 1);
      return (i: number) => Buffer.from((a.data as Uint8Array).subarray(i * row, (i + 1) * row));
    };
    for (const [format, folder] of Object.entries(worlds) as ['god' | 'bold5000', string][]) {
      const path = join(dir, folder);
      const setDir = join(dir, `${folder}-images`);
      const set = await prepareImages({ dataset: format, path, out: setDir, imageSize: 24 });
      assert.equal(set.subject, null);
      const ids = JSON.parse(await readFile(join(setDir, STIMULI_FILE), 'utf8')) as StimuliFile;
      for (const subject of subjects[format]) {
        const prep = join(dir, `${folder}-${subject}`);
        await prepareDataset({ dataset: format, path, subject, out: prep, imageSize: 24 });
        const own = JSON.parse(await readFile(join(prep, STIMULI_FILE), 'utf8')) as StimuliFile;
        const own1 = join(dir, `${folder}-${subject}-images`);
        await prepareImages({ dataset: format, path, subject, out: own1, imageSize: 24 });
        const ownSet = JSON.parse(await readFile(join(own1, STIMULI_FILE), 'utf8')) as StimuliFile;
        for (const split of ['train', 'test'] as const) {
          const rows = await npy(prep, `${split}_images.npy`);
          const inSet = await npy(setDir, `${split}_images.npy`);
          const inOwn = await npy(own1, `${split}_images.npy`);
          assert.equal(
            new Set(ownSet[split]).size,
            ownSet[split].length,
            'an image set has distinct stimuli',
          );
          own[split].forEach((id, i) => {
            assert.ok(
              rows(i).equals(inSet(ids[split].indexOf(id))),
              `${format} ${subject} ${split} row ${i}`,
            );
            assert.ok(
              rows(i).equals(inOwn(ownSet[split].indexOf(id))),
              `${format} ${subject} ${split} row ${i}`,
            );
          });
        }
      }
    }
  });
});

describe('lea data CLI flags', () => {
  const run = async (...args: string[]): Promise<void> => {
    const program = new Command('lea').exitOverride();
    registerDataCommands(program);
    await program.parseAsync(args, { from: 'user' });
  };
  const cases: [string[], RegExp][] = [
    [
      ['data', 'synth', '--format', 'nifti', '--out', 'x', '--seed', '1'],
      /--format must be one of god, bold5000/,
    ],
    [
      ['data', 'synth', '--format', 'god', '--out', 'x', '--seed', '-3'],
      /--seed must be a non-negative integer/,
    ],
    [
      ['data', 'synth', '--format', 'god', '--out', 'x', '--seed', '1', '--scale', 'huge'],
      /--scale must be one of tiny, small, paper/,
    ],
    [
      ['data', 'synth', '--format', 'god', '--out', 'x', '--seed', '1', '--subjects', 'two'],
      /--subjects must be a small positive integer, got 'two'/,
    ],
    [
      ['data', 'prepare', '--dataset', 'hcp', '--path', '.', '--subject', 'sbj_1', '--out', 'x'],
      /--dataset must be one of/,
    ],
    [
      ['data', 'prepare', '--dataset', 'god', '--path', '.', '--subject', 'CSI1', '--out', 'x'],
      /--subject for god must match/,
    ],
    [
      [
        'data',
        'prepare',
        '--dataset',
        'bold5000',
        '--path',
        '/nonexistent',
        '--subject',
        'CSI1',
        '--out',
        'x',
      ],
      /--path \/nonexistent is not a directory/,
    ],
  ];
  for (const [args, message] of cases) {
    it(`rejects ${args.slice(1).join(' ')}`, async () => {
      await assert.rejects(run(...args), (e: Error) => e instanceof BadInputError && message.test(e.message));
    });
  }

  it('synth then prepare through the CLI', async () => {
    const log = console.log;
    const lines: string[] = [];
    console.log = (s: string) => lines.push(s);
    try {
      await run('data', 'synth', '--format', 'bold5000', '--out', join(dir, 'cli-bold'), '--seed', '3');
      await run(
        'data',
        'prepare',
        '--dataset',
        'bold5000',
        '--path',
        join(dir, 'cli-bold'),
        '--subject',
        'CSI1',
        '--out',
        join(dir, 'cli-out'),
      );
    } finally {
      console.log = log;
    }
    assert.match(lines[0]!, /wrote a synthetic bold5000 world \(tiny, subject CSI1\)/);
    assert.match(lines[1]!, /prepared bold5000 CSI1: K=256 .* train 600, test 12/);
  });
});

describe('roi_patch: the config, then roi_patch.json, then the paper table, then the masks', () => {
  it("uses the config's sizes when given, and otherwise derives them from the masks, saying so in meta.json", async () => {
    // a subject outside the paper's table, in a folder without roi_patch.json
    const other = join(dir, 'god-no-roi-patch');
    await cp(god(), other, { recursive: true });
    await rm(join(other, 'roi_patch.json'));
    await rename(join(other, 'sbj_1.npz'), join(other, 'sbj_9.npz'));
    const sizes = [40, 40, 32, 32, 24, 24, 16, 48];
    const derived = await prepareDataset({
      dataset: 'god',
      path: other,
      subject: 'sbj_9',
      out: join(dir, 'p-masks'),
    });
    assert.deepEqual([derived.roiSizes, derived.roiPatchSource], [sizes, 'masks']);
    const given = await prepareDataset({
      dataset: 'god',
      path: other,
      subject: 'sbj_9',
      out: join(dir, 'p-config'),
      roiPatch: sizes,
    });
    assert.equal(given.roiPatchSource, 'config');
    await assert.rejects(
      prepareDataset({
        dataset: 'god',
        path: other,
        subject: 'sbj_9',
        out: join(dir, 'p-bad'),
        roiPatch: [256],
      }),
      /have sizes \[40, 40, 32, 32, 24, 24, 16, 48\] but roi_patch for sbj_9 is \[256\]/,
    );
    const file = await prepareDataset({
      dataset: 'god',
      path: god(),
      subject: 'sbj_1',
      out: join(dir, 'p-file'),
    });
    assert.equal(file.roiPatchSource, 'roi_patch.json');
    const bolds = await prepareDataset({
      dataset: 'bold5000',
      path: bold(),
      subject: 'CSI1',
      out: join(dir, 'p-b'),
    });
    assert.equal(bolds.roiPatchSource, 'roi_patch.json');
  });
});
