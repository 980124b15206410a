/**
 * The synthetic world as GOD's files: images.npz, one sbj_N.npz per subject, MinD-Vis's label files.
 * Split: held-out shape × palette combinations are the test categories (every shape and every palette still
 * appears in training), like GOD's 50 test categories disjoint from its 150 training ones. Test rows average
 * 8 (tiny) or 35 repeats; the extra non-ROI voxels are noise only.
 *
 * ROI masks: keys V1, V2, V3, V4, LOC, FFA, PPA, LVC, HVC, VC come first (np.savez puts keywords before
 * arr_*), with real-looking overlaps (FFA overlaps LOC, PPA overlaps FFA, LVC = V1-V3, HVC and VC are unions)
 * so the first-ten-keys rule yields 8 groups equal to roi_patch; the voxels of each ROI are scattered over the
 * volume. At tiny/small scale the folder gets roi_patch.json; paper scale uses the paper's sbj_1 shapes and so
 * needs none.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../compute/rng.js';
import { ndarray, type NdArray } from '../../tensors/ndarray.js';
import { writeNpz } from '../../tensors/npz.js';
import { PAPER_ROI_PATCH } from '../common.js';
import { GOD_IMAGES_FILE, GOD_LABEL_FILES } from '../god.js';
import * as synth from './world.js';

const GOD_ROI_KINDS: synth.VoxelKind[] = [
  { kind: 'early', sigma: [0.7, 1.3] },
  { kind: 'early', sigma: [1.0, 1.8] },
  { kind: 'early', sigma: [1.4, 2.4] },
  { kind: 'early', sigma: [1.8, 3.2] },
  { kind: 'high', shape: 1, palette: 0.5, attrs: 0.4 }, // LOC: mostly shape
  { kind: 'high', shape: 0.8, palette: 0.8, attrs: 0.3 }, // FFA
  { kind: 'high', shape: 0.5, palette: 0.6, attrs: 0.8 }, // PPA: more layout
  { kind: 'high', shape: 0.8, palette: 0.8, attrs: 0.5 }, // rest of HVC
];

/** One GOD subject's file (ROI masks, trials, image order) on the world's shared stimuli. */
async function synthGodSubject(
  dir: string,
  world: synth.World,
  g: synth.ScaleSpec['god'],
  seed: number,
  stimuli: { train: synth.Stimulus[]; test: synth.Stimulus[]; trainImages: NdArray; testImages: NdArray },
  n: number,
  roiPatch: number[],
): Promise<void> {
  const subject = `sbj_${n}`;
  const { train: trainStim, test: testStim, trainImages, testImages } = stimuli;
  const voxRng = new Rng(seed, synth.subjectStream('synth-voxels', n));
  const rois = roiPatch.map((n, i) => synth.roiModel(n, GOD_ROI_KINDS[i]!, voxRng));
  // One standardisation over train and test stimuli together, so both get the same voxel transform.
  const nTrain = trainStim.length;
  const { signal, variance } = synth.signals(
    [...trainStim, ...testStim],
    (i) => (i < nTrain ? synth.pooled(trainImages, i) : synth.pooled(testImages, i - nTrain)),
    rois,
    world,
  );

  // Scatter ROI voxels over the volume; the first extraVoxels of the permutation lie outside every mask.
  const K = roiPatch.reduce((a, b) => a + b, 0);
  const V = K + g.extraVoxels;
  const perm = voxRng.permutation(V);
  const column = perm.subarray(g.extraVoxels); // column of ROI-ordered voxel j
  const groups: Int32Array[] = [];
  let at = 0;
  for (const size of roiPatch) {
    groups.push(column.subarray(at, at + size));
    at += size;
  }
  const mask = (...parts: ArrayLike<number>[]): NdArray => {
    const m = ndarray('bool', [V]);
    for (const p of parts) for (let i = 0; i < p.length; i++) (m.data as Uint8Array)[p[i]!] = 1;
    return m;
  };
  const share = (grp: Int32Array, frac: number): Int32Array =>
    grp.subarray(0, Math.max(1, Math.floor(grp.length * frac)));
  const [v1, v2, v3, v4, loc, ffa, ppa, rest] = groups as [
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
    Int32Array,
  ];
  const masks: [string, NdArray][] = [
    ['V1', mask(v1)],
    ['V2', mask(v2)],
    ['V3', mask(v3)],
    ['V4', mask(v4)],
    ['LOC', mask(loc)],
    ['FFA', mask(ffa, share(loc, 0.2))],
    ['PPA', mask(ppa, share(ffa, 0.2))],
    ['LVC', mask(v1, v2, v3)],
    ['HVC', mask(loc, ffa, ppa, rest)],
    ['VC', mask(v1, v2, v3, v4, loc, ffa, ppa, rest)],
  ];

  // Full-volume trials: ROI voxels from the model, the rest pure noise at the scale of a unit-variance signal.
  const scanVariance = new Float64Array(V).fill(1);
  for (let j = 0; j < K; j++) scanVariance[column[j]!] = variance[j]!;
  const scanner = new synth.Scanner(scanVariance, new Rng(seed, synth.subjectStream('synth-noise', n)));
  const volumeSignal = (stimulus: number, into: Float64Array): Float64Array => {
    into.fill(0);
    for (let j = 0; j < K; j++) into[column[j]!] = signal[stimulus * K + j]!;
    return into;
  };
  const buf = new Float64Array(V);
  // Training images are presented once each, in shuffled order; arr_3 maps presentation → image row.
  const order = new Rng(seed, synth.subjectStream('synth-order', n)).permutation(trainStim.length);
  const arr0 = ndarray('float32', [trainStim.length, V]);
  order.forEach((img, t) => scanner.trial(volumeSignal(img, buf), 0, arr0.data as Float32Array, t * V));
  const nTest = testStim.length;
  const arr1 = ndarray('float32', [nTest * g.repeats, V]);
  const arr2 = ndarray('float32', [nTest, V]);
  const acc = new Float64Array(V);
  for (let i = 0; i < nTest; i++) {
    acc.fill(0);
    volumeSignal(nTrain + i, buf);
    for (let r = 0; r < g.repeats; r++) {
      const row = r * nTest + i;
      scanner.trial(buf, 0, arr1.data as Float32Array, row * V);
      for (let v = 0; v < V; v++) acc[v]! += (arr1.data as Float32Array)[row * V + v]!;
    }
    for (let v = 0; v < V; v++) (arr2.data as Float32Array)[i * V + v] = acc[v]! / g.repeats;
  }
  const arr3 = ndarray(
    'int64',
    [trainStim.length],
    BigInt64Array.from(order, (i) => BigInt(i)),
  );

  await writeNpz(
    join(dir, `${subject}.npz`),
    [...masks, ['arr_0', arr0], ['arr_1', arr1], ['arr_2', arr2], ['arr_3', arr3]],
    { compress: false },
  );
}

export const synthGod: synth.WorldWriter = async (dir, spec, seed, scale, count) => {
  const g = spec.god;
  const worldRng = new Rng(seed, 'synth-world');
  const world = synth.makeWorld(spec, worldRng);
  const test = synth.heldOutCombos(spec.shapes, spec.palettes, g.testCombos, worldRng);
  const combos = Array.from({ length: spec.shapes * spec.palettes }, (_, c) => c);
  const trainCombos = combos.filter((c) => !test.has(c));
  const testCombos = combos.filter((c) => test.has(c));

  const stimRng = new Rng(seed, 'synth-stimuli');
  const toStim = (c: number): synth.Stimulus =>
    synth.drawStimulus(Math.floor(c / spec.palettes), c % spec.palettes, stimRng);
  const trainStim = trainCombos.flatMap((c) => Array.from({ length: g.trainPerClass }, () => toStim(c)));
  const testStim = testCombos.flatMap((c) => Array.from({ length: g.testPerClass }, () => toStim(c)));
  const renderRng = new Rng(seed, 'synth-render');
  const trainImages = synth.renderAll(trainStim, spec, renderRng);
  const testImages = synth.renderAll(testStim, spec, renderRng);

  await writeNpz(
    join(dir, GOD_IMAGES_FILE),
    [
      ['train_images', trainImages],
      ['test_images', testImages],
    ],
    { compress: false },
  );
  const subjects = Array.from({ length: count }, (_, i) => `sbj_${i + 1}`);
  const sizes: Record<string, number[]> = {};
  for (const [i, subject] of subjects.entries()) {
    sizes[subject] = synth.subjectSizes(
      g.roiPatch,
      i + 1,
      scale === 'paper' ? PAPER_ROI_PATCH.god[subject] : undefined,
    );
    await synthGodSubject(
      dir,
      world,
      g,
      seed,
      { train: trainStim, test: testStim, trainImages, testImages },
      i + 1,
      sizes[subject],
    );
  }

  // Labels in MinD-Vis's form: class index → [wnid, description]; CSV rows "offset.imageid,file".
  const wnidOffset = (c: number): number => 10_000_000 + c;
  const classIndex: Record<string, string[]> = {};
  combos.forEach((c) => {
    const sh = synth.SHAPES[Math.floor(c / spec.palettes)]!;
    classIndex[String(c)] = [`n${wnidOffset(c)}`, `${sh.style}${sh.sides}_palette${c % spec.palettes}`];
  });
  const csv = (cs: number[], per: number): string =>
    cs
      .flatMap((c) =>
        Array.from(
          { length: per },
          (_, k) => `${wnidOffset(c)}.${String(k + 1).padStart(6, '0')},n${wnidOffset(c)}_${k + 1}.JPEG`,
        ),
      )
      .join('\n') + '\n';
  const [indexFile, trainCsv, testCsv] = GOD_LABEL_FILES;
  await writeFile(join(dir, indexFile), JSON.stringify(classIndex));
  await writeFile(join(dir, trainCsv), csv(trainCombos, g.trainPerClass));
  await writeFile(join(dir, testCsv), csv(testCombos, g.testPerClass));
  const files = [GOD_IMAGES_FILE, ...subjects.map((sbj) => `${sbj}.npz`), ...GOD_LABEL_FILES];
  await synth.writeRoiPatch(dir, scale, sizes, files);
  return { format: 'god', scale, subject: subjects[0]!, subjects, files };
};
