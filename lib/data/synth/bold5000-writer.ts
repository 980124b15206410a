/**
 * The synthetic world as BOLD5000's files: per-subject beta .npy files per ROI and hemisphere, presentation
 * lists, the repeated-stimuli list and the pickled image dict. Test images are ordinary stimuli shown several
 * times (4, averaged by the loader), as in the real dataset. At tiny/small scale the folder gets
 * roi_patch.json; paper scale uses CSI1's shapes and so needs none.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../compute/rng.js';
import { ndarray, type NdArray } from '../../tensors/ndarray.js';
import { writeNpy } from '../../tensors/npy.js';
import { writeImageDictNpy } from '../../tensors/pickle.js';
import { BOLD_BETA_DIR, BOLD_IMG_DICT, BOLD_LIST_DIR, BOLD_REPEATED_FILE, BOLD_ROIS } from '../bold5000.js';
import * as synth from './world.js';

const BOLD_ROI_KINDS: synth.VoxelKind[] = [
  { kind: 'early', sigma: [0.7, 3.0] }, // EarlyVis spans V1-V3
  { kind: 'high', shape: 1, palette: 0.5, attrs: 0.4 }, // LOC
  { kind: 'high', shape: 0.5, palette: 0.5, attrs: 0.9 }, // OPA
  { kind: 'high', shape: 0.5, palette: 0.7, attrs: 0.8 }, // PPA
  { kind: 'high', shape: 0.6, palette: 0.6, attrs: 0.6 }, // RSC
];

/** One BOLD5000 subject's beta files and presentation lists, on the world's shared images. */
async function synthBoldSubject(
  dir: string,
  world: synth.World,
  b: synth.ScaleSpec['bold'],
  seed: number,
  shared: { stimuli: synth.Stimulus[]; images: NdArray; names: string[]; testIdx: number[] },
  n: number,
  roiFiles: [number, number][],
  files: string[],
): Promise<number[]> {
  const subject = `CSI${n}`;
  const { stimuli, images, names, testIdx } = shared;
  const voxRng = new Rng(seed, synth.subjectStream('synth-voxels', n));
  const roiSizes = roiFiles.map(([l, r]) => l + r);
  const rois = roiSizes.map((n, i) => synth.roiModel(n, BOLD_ROI_KINDS[i]!, voxRng));
  const { signal, variance } = synth.signals(stimuli, (i) => synth.pooled(images, i), rois, world);
  const K = variance.length;

  // Trials: each training image once, each test image `repeats` times (the last one once fewer on CSI1).
  const trialImages: number[] = Array.from({ length: b.trainImages }, (_, i) => i);
  testIdx.forEach((img, k) => {
    const reps = b.shortLastRepeat && k === testIdx.length - 1 ? b.repeats - 1 : b.repeats;
    for (let r = 0; r < reps; r++) trialImages.push(img);
  });
  const order = new Rng(seed, synth.subjectStream('synth-order', n)).shuffle(trialImages);
  const T = order.length;
  const betas = new Float32Array(T * K);
  const scanner = new synth.Scanner(variance, new Rng(seed, synth.subjectStream('synth-noise', n)));
  order.forEach((img, t) => scanner.trial(signal, img * K, betas, t * K));

  const betaDir = join(dir, BOLD_BETA_DIR);
  await mkdir(betaDir, { recursive: true });
  let col = 0;
  for (const [r, roi] of BOLD_ROIS.entries()) {
    for (const [h, hemi] of (['LH', 'RH'] as const).entries()) {
      const width = roiFiles[r]![h]!;
      const arr = ndarray('float32', [T, width]);
      const d = arr.data as Float32Array;
      for (let t = 0; t < T; t++) d.set(betas.subarray(t * K + col, t * K + col + width), t * width);
      const name = `${subject}_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_allses_${hemi}${roi}.npy`;
      await writeNpy(join(betaDir, name), arr);
      files.push(join(BOLD_BETA_DIR, name));
      col += width;
    }
  }

  // Presentation lists: sessions × runs, trials split evenly in order; repeated stimuli carry 'rep_'.
  const isTest = new Set(testIdx);
  const runs = b.sessions * b.runs;
  for (let s = 0; s < b.sessions; s++) {
    const sdir = join(dir, BOLD_LIST_DIR, subject, `${subject}_sess${String(s + 1).padStart(2, '0')}`);
    await mkdir(sdir, { recursive: true });
    for (let r = 0; r < b.runs; r++) {
      const run = s * b.runs + r;
      const lines = order
        .slice(Math.floor((run * T) / runs), Math.floor(((run + 1) * T) / runs))
        .map((img) => (isTest.has(img) ? `rep_${names[img]}` : names[img]!));
      const name = `${subject}_sess${String(s + 1).padStart(2, '0')}_run${String(r + 1).padStart(2, '0')}.txt`;
      await writeFile(join(sdir, name), lines.join('\n') + '\n');
    }
  }
  files.push(join(BOLD_LIST_DIR, subject));

  return roiSizes;
}

export const synthBold: synth.WorldWriter = async (dir, spec, seed, scale, count) => {
  const b = spec.bold;
  const worldRng = new Rng(seed, 'synth-world');
  const world = synth.makeWorld(spec, worldRng);
  const classes = spec.shapes * spec.palettes;
  const stimRng = new Rng(seed, 'synth-stimuli');
  const nImages = b.trainImages + b.testImages;
  const stimuli = Array.from({ length: nImages }, () => {
    const c = stimRng.integer(0, classes);
    return synth.drawStimulus(Math.floor(c / spec.palettes), c % spec.palettes, stimRng);
  });
  const images = synth.renderAll(stimuli, spec, new Rng(seed, 'synth-render'));
  const names = stimuli.map((_, i) => `synth_${String(i).padStart(5, '0')}.jpg`);
  const testIdx = Array.from({ length: b.testImages }, (_, i) => b.trainImages + i);

  const files: string[] = [];
  const subjects = Array.from({ length: count }, (_, i) => `CSI${i + 1}`);
  const sizes: Record<string, number[]> = {};
  for (const [i, subject] of subjects.entries()) {
    const roiFiles = b.roiFiles.map((lr) => synth.subjectSizes(lr, i + 1, undefined) as [number, number]);
    sizes[subject] = await synthBoldSubject(
      dir,
      world,
      b,
      seed,
      { stimuli, images, names, testIdx },
      i + 1,
      roiFiles,
      files,
    );
  }

  const repeated = [
    ...testIdx.map((i) => names[i]!),
    ...Array.from({ length: b.absentRepeated }, (_, k) => `never_shown_${k}.jpg`),
  ];
  await mkdir(join(dir, BOLD_IMG_DICT, '..'), { recursive: true });
  await writeFile(join(dir, BOLD_REPEATED_FILE), repeated.join('\n') + '\n');
  const S = spec.imageSize;
  await writeImageDictNpy(
    join(dir, BOLD_IMG_DICT),
    names.map(
      (n, i) =>
        [
          n,
          ndarray(
            'uint8',
            [S, S, 3],
            (images.data as Uint8Array).subarray(i * S * S * 3, (i + 1) * S * S * 3),
          ),
        ] as const,
    ),
  );
  files.push(BOLD_REPEATED_FILE, BOLD_IMG_DICT);
  await synth.writeRoiPatch(dir, scale, sizes, files);
  return { format: 'bold5000', scale, subject: subjects[0]!, subjects, files };
};
