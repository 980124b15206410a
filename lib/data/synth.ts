/**
 * A synthetic world written in the real dataset formats (GOD's npz files, BOLD5000's beta .npy files,
 * presentation lists and pickled image dict), so the real loaders, and everything after them, run on it.
 *
 * Generative model (spec §7, scaled by --scale):
 * - Classes are shape × palette combinations (tiny: 4 × 4 = 16; small/paper: 20 × 10 = 200). A shape is a
 *   silhouette (polygon, star, ring or pinwheel with 3-8 sides); a palette is a foreground hue. Each image
 *   adds nuisances: shift, scale, rotation, background grey, slight pixel noise. Rendered anti-aliased at
 *   the scale's size (16, 64 or 256 px).
 * - GOD split: held-out shape × palette combinations are the test categories (every shape and every
 *   palette still appears in training), like GOD's 50 test categories disjoint from its 150 training ones.
 *   BOLD5000: test images are ordinary stimuli shown several times, as in the real dataset.
 * - Voxels, early ROIs (GOD V1-V4, BOLD EarlyVis): a Gaussian receptive field (random centre, width
 *   growing V1 → V4) on a 16 × 16 average-pooled copy of the image, with random RGB weights: a linear
 *   read-out of local colour and luminance, so position, silhouette and colour are recoverable.
 * - Voxels, higher ROIs (LOC, FFA, PPA, HVC; LOC, OPA, PPA, RSC): a_v · (α·e_shape + β·e_palette) +
 *   γ·b_v · nuisance attributes, with 8-d random class embeddings. The class code is additive in shape and
 *   palette, so held-out combinations are linear in features seen in training.
 * - Each voxel's signal is standardised over the stimuli and passed through a mild softsign.
 * - Trials: per-voxel offset and gain around (signal + noise); noise is i.i.d. plus a rank-3 structured
 *   part (fixed spatial maps × per-trial N(0,1)), with variance 0.6 × the voxel's signal variance per
 *   single trial, so the signal carries most of the variance. GOD's test rows average 8 (tiny) or 35
 *   repeats; BOLD's test images are shown 4 times and averaged by the loader. GOD's extra non-ROI voxels
 *   are noise only.
 * Why both tasks are solvable: decoding (fMRI → image features) is a noisy linear inverse of the early
 * RF read-out plus a linear read-out of the additive class code; encoding (image → fMRI) is the forward
 * map itself, linear in pooled pixels and in the shape/palette/nuisance factors up to the softsign.
 * Averaging test repeats raises the test signal-to-noise ratio far above single trials.
 *
 * GOD ROI masks: keys V1, V2, V3, V4, LOC, FFA, PPA, LVC, HVC, VC come first (np.savez puts keywords
 * before arr_*), with real-looking overlaps (FFA overlaps LOC, PPA overlaps FFA, LVC = V1-V3, HVC and VC
 * are unions) so the first-ten-keys rule yields 8 groups equal to roi_patch; the voxels of each ROI are
 * scattered over the volume. At tiny/small scale the folder gets roi_patch.json; paper scale uses the
 * paper's sbj_1 / CSI1 shapes and so needs none.
 *
 * Everything is drawn from lib/compute/rng.ts streams of the given seed: the same seed gives the same bytes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { ndarray } from '../tensors/ndarray.js';
import type { NdArray } from '../tensors/ndarray.js';
import { writeNpy } from '../tensors/npy.js';
import { writeNpz } from '../tensors/npz.js';
import { writeImageDictNpy } from '../tensors/pickle.js';
import { BOLD_BETA_DIR, BOLD_IMG_DICT, BOLD_LIST_DIR, BOLD_REPEATED_FILE, BOLD_ROIS } from './bold5000.js';
import { PAPER_ROI_PATCH, ROI_PATCH_FILE, withOutputDir } from './common.js';
import { GOD_IMAGES_FILE, GOD_LABEL_FILES } from './god.js';

export type SynthScale = 'tiny' | 'small' | 'paper';
export type SynthFormat = 'god' | 'bold5000';

interface ScaleSpec {
  imageSize: number;
  shapes: number;
  palettes: number;
  god: {
    testCombos: number;
    trainPerClass: number;
    testPerClass: number;
    repeats: number;
    /** Sizes of V1, V2, V3, V4, LOC, FFA, PPA and the rest of HVC after overlap removal. */
    roiPatch: number[];
    extraVoxels: number;
  };
  bold: {
    /** [LH, RH] voxel counts per ROI, in BOLD_ROIS order. */
    roiFiles: [number, number][];
    trainImages: number;
    testImages: number;
    /** Presentations of each test image; the last may be shown once fewer (CSI1: 112 × 4 + 3). */
    repeats: number;
    shortLastRepeat: boolean;
    sessions: number;
    runs: number;
    /** Names in the repeated list never shown to the subject (as for CSI4), exercising the loader's skip. */
    absentRepeated: number;
  };
}

export const SYNTH_SCALES: Readonly<Record<SynthScale, ScaleSpec>> = {
  tiny: {
    imageSize: 16,
    shapes: 4,
    palettes: 4,
    god: {
      testCombos: 4,
      trainPerClass: 50,
      testPerClass: 3,
      repeats: 8,
      roiPatch: [40, 40, 32, 32, 24, 24, 16, 48],
      extraVoxels: 32,
    },
    bold: {
      roiFiles: [
        [40, 40],
        [32, 32],
        [16, 16],
        [24, 24],
        [16, 16],
      ],
      trainImages: 600,
      testImages: 12,
      repeats: 4,
      shortLastRepeat: false,
      sessions: 3,
      runs: 2,
      absentRepeated: 1,
    },
  },
  small: {
    imageSize: 64,
    shapes: 20,
    palettes: 10,
    god: {
      testCombos: 50,
      trainPerClass: 8,
      testPerClass: 1,
      repeats: 35,
      roiPatch: [251, 200, 119, 147, 108, 62, 39, 190],
      extraVoxels: 112,
    },
    bold: {
      roiFiles: [
        [62, 62],
        [43, 43],
        [36, 36],
        [41, 41],
        [29, 29],
      ],
      trainImages: 1200,
      testImages: 50,
      repeats: 4,
      shortLastRepeat: false,
      sessions: 5,
      runs: 4,
      absentRepeated: 1,
    },
  },
  paper: {
    imageSize: 256,
    shapes: 20,
    palettes: 10,
    god: {
      testCombos: 50,
      trainPerClass: 8,
      testPerClass: 1,
      repeats: 35,
      roiPatch: [1004, 801, 476, 588, 431, 249, 157, 760],
      extraVoxels: 447,
    },
    bold: {
      roiFiles: [
        [247, 248],
        [171, 171],
        [144, 144],
        [165, 166],
        [114, 115],
      ],
      trainImages: 4803,
      testImages: 113,
      repeats: 4,
      shortLastRepeat: true,
      sessions: 15,
      runs: 10,
      absentRepeated: 0,
    },
  },
};

const POOL = 16; // early voxels see a POOL × POOL average-pooled image
const EMBED = 8;
const ATTRS = 5;
const NOISE_TO_SIGNAL = 0.6;
const STRUCTURED_SHARE = 0.3;
const STRUCTURED_RANK = 3;

interface Stimulus {
  shape: number;
  palette: number;
  shiftX: number;
  shiftY: number;
  scale: number;
  rotation: number;
  background: number;
}

type ShapeStyle = 'polygon' | 'star' | 'ring' | 'pinwheel';
const SIDES = [3, 4, 5, 6, 8];
const STYLES: ShapeStyle[] = ['polygon', 'star', 'ring', 'pinwheel'];
/** The first four are the most distinct at 16 px: disc, square, triangle, ring. */
const SHAPES: { sides: number; style: ShapeStyle }[] = (() => {
  const first = [
    { sides: 8, style: 'polygon' as const },
    { sides: 4, style: 'polygon' as const },
    { sides: 3, style: 'polygon' as const },
    { sides: 8, style: 'ring' as const },
  ];
  const rest = STYLES.flatMap((style) => SIDES.map((sides) => ({ sides, style }))).filter(
    (s) => !first.some((f) => f.sides === s.sides && f.style === s.style),
  );
  return [...first, ...rest];
})();

function polygonRadius(theta: number, n: number, R: number): number {
  const sector = (2 * Math.PI) / n;
  const a = (((theta % sector) + sector) % sector) - sector / 2;
  return (R * Math.cos(Math.PI / n)) / Math.cos(a);
}

function insideShape(shape: number, r: number, theta: number): boolean {
  const { sides: n, style } = SHAPES[shape]!;
  const R = 0.7;
  switch (style) {
    case 'polygon':
      return r <= polygonRadius(theta, n, R);
    case 'star':
      return r <= R * (0.62 + 0.38 * Math.cos(n * theta));
    case 'ring':
      return r <= polygonRadius(theta, n, R) && r > polygonRadius(theta, n, 0.55 * R);
    case 'pinwheel':
      return r <= polygonRadius(theta, n, R) && Math.floor(((theta + Math.PI) * n) / Math.PI) % 2 === 0;
  }
}

function paletteColour(p: number, palettes: number): [number, number, number] {
  // HSV(h, 0.85, 0.95) → RGB, hues spread evenly
  const h = (p / palettes) * 6;
  const s = 0.85;
  const v = 0.95;
  const f = h - Math.floor(h);
  const [a, b, c] = [v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))];
  return (
    [
      [v, c, a],
      [b, v, a],
      [a, v, c],
      [a, b, v],
      [c, a, v],
      [v, a, b],
    ] as [number, number, number][]
  )[Math.floor(h) % 6]!;
}

/** Renders one stimulus (2 × 2 supersampled) into `out` (size*size*3 bytes); `noise` is scratch of that length. */
function render(
  st: Stimulus,
  size: number,
  palettes: number,
  rng: Rng,
  out: Uint8Array,
  noise: Float32Array,
): void {
  const fg = paletteColour(st.palette, palettes);
  rng.fillNormal(noise, 0, 0.02);
  const cos = Math.cos(-st.rotation);
  const sin = Math.sin(-st.rotation);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let cover = 0;
      for (let sy = 0; sy < 2; sy++) {
        for (let sx = 0; sx < 2; sx++) {
          const u = ((x + (sx + 0.5) / 2) / size) * 2 - 1 - st.shiftX;
          const v = ((y + (sy + 0.5) / 2) / size) * 2 - 1 - st.shiftY;
          const ru = (u * cos - v * sin) / st.scale;
          const rv = (u * sin + v * cos) / st.scale;
          if (insideShape(st.shape, Math.hypot(ru, rv), Math.atan2(rv, ru))) cover++;
        }
      }
      const k = cover / 4;
      const o = (y * size + x) * 3;
      for (let c = 0; c < 3; c++) {
        const val = st.background * (1 - k) + fg[c]! * k + noise[o + c]!;
        out[o + c] = Math.max(0, Math.min(255, Math.round(val * 255)));
      }
    }
  }
}

function drawStimulus(shape: number, palette: number, rng: Rng): Stimulus {
  return {
    shape,
    palette,
    shiftX: rng.uniform() * 0.4 - 0.2,
    shiftY: rng.uniform() * 0.4 - 0.2,
    scale: 0.75 + rng.uniform() * 0.3,
    rotation: (rng.uniform() - 0.5) * 0.7,
    background: 0.1 + rng.uniform() * 0.35,
  };
}

/** Nuisance attributes, each mapped to about [-1, 1]. */
function attributes(st: Stimulus): number[] {
  return [
    (st.scale - 0.9) / 0.15,
    st.shiftX / 0.2,
    st.shiftY / 0.2,
    (st.background - 0.275) / 0.175,
    st.rotation / 0.35,
  ];
}

/** Held-out combinations: no shape or palette may lose more than its share of combinations to the test set. */
function heldOutCombos(shapes: number, palettes: number, count: number, rng: Rng): Set<number> {
  const perShape = Math.ceil(count / shapes);
  const perPalette = Math.ceil(count / palettes);
  for (;;) {
    const chosen = new Set<number>();
    const byShape = new Array<number>(shapes).fill(0);
    const byPalette = new Array<number>(palettes).fill(0);
    for (const combo of rng.permutation(shapes * palettes)) {
      const s = Math.floor(combo / palettes);
      const p = combo % palettes;
      if (byShape[s]! < perShape && byPalette[p]! < perPalette) {
        chosen.add(combo);
        byShape[s]!++;
        byPalette[p]!++;
        if (chosen.size === count) return chosen;
      }
    }
  }
}

/** Renders a list of stimuli into one uint8 [N, S, S, 3] array. */
function renderAll(stimuli: Stimulus[], spec: ScaleSpec, rng: Rng): NdArray {
  const S = spec.imageSize;
  const arr = ndarray('uint8', [stimuli.length, S, S, 3]);
  const data = arr.data as Uint8Array;
  const noise = new Float32Array(S * S * 3);
  stimuli.forEach((st, i) =>
    render(st, S, spec.palettes, rng, data.subarray(i * S * S * 3, (i + 1) * S * S * 3), noise),
  );
  return arr;
}

/** Average-pools image i to POOL × POOL × 3 floats in [0, 1], centred at 0.5. */
function pooled(images: NdArray, i: number): Float64Array {
  const S = images.shape[1]!;
  const block = S / POOL;
  const data = images.data as Uint8Array;
  const out = new Float64Array(POOL * POOL * 3);
  const base = i * S * S * 3;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const o = ((Math.floor(y / block) * POOL + Math.floor(x / block)) * 3) | 0;
      const p = base + (y * S + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c]! += data[p + c]! / 255;
    }
  }
  for (let j = 0; j < out.length; j++) out[j] = out[j]! / (block * block) - 0.5;
  return out;
}

type VoxelKind =
  | { kind: 'early'; sigma: [number, number] }
  | { kind: 'high'; shape: number; palette: number; attrs: number };

/** One ROI's voxels: a sparse RF read-out (early) or class-code loadings (high). */
interface RoiModel {
  size: number;
  response(stimulus: Stimulus, pool: Float64Array, world: World, out: Float64Array, at: number): void;
}

interface World {
  shapeCode: Float64Array[];
  paletteCode: Float64Array[];
}

function makeWorld(spec: ScaleSpec, rng: Rng): World {
  const code = (): Float64Array => Float64Array.from({ length: EMBED }, () => rng.normal());
  return {
    shapeCode: Array.from({ length: spec.shapes }, code),
    paletteCode: Array.from({ length: spec.palettes }, code),
  };
}

function roiModel(size: number, kind: VoxelKind, rng: Rng): RoiModel {
  if (kind.kind === 'early') {
    const fields = Array.from({ length: size }, () => {
      const cx = rng.uniform() * POOL;
      const cy = rng.uniform() * POOL;
      const sigma = kind.sigma[0] + rng.uniform() * (kind.sigma[1] - kind.sigma[0]);
      const rgb = [rng.normal() + 0.5, rng.normal() + 0.5, rng.normal() + 0.5];
      const idx: number[] = [];
      const w: number[] = [];
      for (let y = 0; y < POOL; y++) {
        for (let x = 0; x < POOL; x++) {
          const g = Math.exp(-((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2) / (2 * sigma * sigma));
          if (g < 0.01) continue;
          for (let c = 0; c < 3; c++) {
            idx.push((y * POOL + x) * 3 + c);
            w.push(g * rgb[c]!);
          }
        }
      }
      return { idx: Int32Array.from(idx), w: Float64Array.from(w) };
    });
    return {
      size,
      response: (_st, pool, _world, out, at) => {
        fields.forEach((f, v) => {
          let s = 0;
          for (let j = 0; j < f.idx.length; j++) s += f.w[j]! * pool[f.idx[j]!]!;
          out[at + v] = s;
        });
      },
    };
  }
  const loadings = Array.from({ length: size }, () => ({
    a: Float64Array.from({ length: EMBED }, () => rng.normal() / Math.sqrt(EMBED)),
    b: Float64Array.from({ length: ATTRS }, () => rng.normal() / Math.sqrt(ATTRS)),
  }));
  return {
    size,
    response: (st, _pool, world, out, at) => {
      const es = world.shapeCode[st.shape]!;
      const ep = world.paletteCode[st.palette]!;
      const attrs = attributes(st);
      loadings.forEach((l, v) => {
        let s = 0;
        for (let k = 0; k < EMBED; k++) s += l.a[k]! * (kind.shape * es[k]! + kind.palette * ep[k]!);
        for (let k = 0; k < ATTRS; k++) s += kind.attrs * l.b[k]! * attrs[k]!;
        out[at + v] = s;
      });
    },
  };
}

/**
 * Noise-free signal [stimuli, K]: ROI responses concatenated, each voxel standardised over the stimuli and
 * softsign-compressed. Returns the signal and each voxel's signal variance.
 */
function signals(
  stimuli: Stimulus[],
  pool: (i: number) => Float64Array,
  rois: RoiModel[],
  world: World,
): { signal: Float64Array; variance: Float64Array } {
  const K = rois.reduce((n, r) => n + r.size, 0);
  const N = stimuli.length;
  const signal = new Float64Array(N * K);
  stimuli.forEach((st, i) => {
    const p = pool(i);
    let at = i * K;
    for (const r of rois) {
      r.response(st, p, world, signal, at);
      at += r.size;
    }
  });
  const variance = new Float64Array(K);
  for (let v = 0; v < K; v++) {
    let mean = 0;
    for (let i = 0; i < N; i++) mean += signal[i * K + v]!;
    mean /= N;
    let ss = 0;
    for (let i = 0; i < N; i++) ss += (signal[i * K + v]! - mean) ** 2;
    const sd = Math.sqrt(ss / N) || 1;
    let m2 = 0;
    let s2 = 0;
    for (let i = 0; i < N; i++) {
      const z = (signal[i * K + v]! - mean) / sd;
      const y = z / (1 + Math.abs(z) / 3);
      signal[i * K + v] = y;
      m2 += y;
      s2 += y * y;
    }
    variance[v] = s2 / N - (m2 / N) ** 2;
  }
  return { signal, variance };
}

/** Per-voxel measurement model: offset + gain · (signal + i.i.d. noise + structured noise). */
class Scanner {
  private readonly offset: Float64Array;
  private readonly gain: Float64Array;
  private readonly iidSd: Float64Array;
  private readonly maps: Float64Array[];

  constructor(
    private readonly variance: Float64Array,
    private readonly rng: Rng,
  ) {
    const K = variance.length;
    this.offset = Float64Array.from({ length: K }, () => 0.4 + 0.3 * rng.normal());
    this.gain = Float64Array.from({ length: K }, () => 0.6 + 0.8 * rng.uniform());
    this.iidSd = Float64Array.from(variance, (v) => Math.sqrt((1 - STRUCTURED_SHARE) * NOISE_TO_SIGNAL * v));
    const structSd = Float64Array.from(variance, (v) =>
      Math.sqrt((STRUCTURED_SHARE * NOISE_TO_SIGNAL * v) / STRUCTURED_RANK),
    );
    this.maps = Array.from({ length: STRUCTURED_RANK }, () =>
      Float64Array.from(structSd, (sd) => sd * rng.normal()),
    );
  }

  /** One trial's voxel values for `signal` (K floats at `at`), written as float32 into `out` at `outAt`. */
  trial(signal: Float64Array, at: number, out: Float32Array, outAt: number): void {
    const coef = Array.from({ length: STRUCTURED_RANK }, () => this.rng.normal());
    for (let v = 0; v < this.variance.length; v++) {
      let noise = this.iidSd[v]! * this.rng.normal();
      for (let k = 0; k < STRUCTURED_RANK; k++) noise += coef[k]! * this.maps[k]![v]!;
      out[outAt + v] = this.offset[v]! + this.gain[v]! * (signal[at + v]! + noise);
    }
  }
}

const GOD_ROI_KINDS: VoxelKind[] = [
  { kind: 'early', sigma: [0.7, 1.3] },
  { kind: 'early', sigma: [1.0, 1.8] },
  { kind: 'early', sigma: [1.4, 2.4] },
  { kind: 'early', sigma: [1.8, 3.2] },
  { kind: 'high', shape: 1, palette: 0.5, attrs: 0.4 }, // LOC: mostly shape
  { kind: 'high', shape: 0.8, palette: 0.8, attrs: 0.3 }, // FFA
  { kind: 'high', shape: 0.5, palette: 0.6, attrs: 0.8 }, // PPA: more layout
  { kind: 'high', shape: 0.8, palette: 0.8, attrs: 0.5 }, // rest of HVC
];

const BOLD_ROI_KINDS: VoxelKind[] = [
  { kind: 'early', sigma: [0.7, 3.0] }, // EarlyVis spans V1-V3
  { kind: 'high', shape: 1, palette: 0.5, attrs: 0.4 }, // LOC
  { kind: 'high', shape: 0.5, palette: 0.5, attrs: 0.9 }, // OPA
  { kind: 'high', shape: 0.5, palette: 0.7, attrs: 0.8 }, // PPA
  { kind: 'high', shape: 0.6, palette: 0.6, attrs: 0.6 }, // RSC
];

export interface SynthOptions {
  format: SynthFormat;
  out: string;
  seed: number;
  scale: SynthScale;
  /** How many subjects see the world (default 1): sbj_1..sbj_N or CSI1..CSIN, each with its own voxels. */
  subjects?: number;
}

export interface SynthSummary {
  format: SynthFormat;
  scale: SynthScale;
  /** The first subject (the one every scale models as the paper's sbj_1 / CSI1). */
  subject: string;
  subjects: string[];
  files: string[];
}

/** Subjects per world: GOD has five, BOLD5000 four. */
export const SYNTH_MAX_SUBJECTS: Readonly<Record<SynthFormat, number>> = { god: 5, bold5000: 4 };

/**
 * The streams of subject n: the first subject keeps the world's unsuffixed streams (so a one-subject world is
 * byte for byte what it always was), later ones draw their own voxels, noise and presentation order.
 */
const subjectStream = (name: string, n: number): string => (n === 1 ? name : `${name}/subject${n}`);

/** ROI sizes of subject n > 1: the paper's table at paper scale, otherwise the first subject's shrunk 6 % a step. */
function subjectSizes(first: readonly number[], n: number, paper: readonly number[] | undefined): number[] {
  if (n === 1) return [...first];
  if (paper) return [...paper];
  return first.map((v) => Math.max(4, Math.round(v * (1 - 0.06 * (n - 1)))));
}

/** One GOD subject's file (ROI masks, trials, image order) on the world's shared stimuli. */
async function synthGodSubject(
  dir: string,
  world: World,
  g: ScaleSpec['god'],
  seed: number,
  stimuli: { train: Stimulus[]; test: Stimulus[]; trainImages: NdArray; testImages: NdArray },
  n: number,
  roiPatch: number[],
): Promise<void> {
  const subject = `sbj_${n}`;
  const { train: trainStim, test: testStim, trainImages, testImages } = stimuli;
  const voxRng = new Rng(seed, subjectStream('synth-voxels', n));
  const rois = roiPatch.map((n, i) => roiModel(n, GOD_ROI_KINDS[i]!, voxRng));
  // One standardisation over train and test stimuli together, so both get the same voxel transform.
  const nTrain = trainStim.length;
  const { signal, variance } = signals(
    [...trainStim, ...testStim],
    (i) => (i < nTrain ? pooled(trainImages, i) : pooled(testImages, i - nTrain)),
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
  const scanner = new Scanner(scanVariance, new Rng(seed, subjectStream('synth-noise', n)));
  const volumeSignal = (stimulus: number, into: Float64Array): Float64Array => {
    into.fill(0);
    for (let j = 0; j < K; j++) into[column[j]!] = signal[stimulus * K + j]!;
    return into;
  };
  const buf = new Float64Array(V);
  // Training images are presented once each, in shuffled order; arr_3 maps presentation → image row.
  const order = new Rng(seed, subjectStream('synth-order', n)).permutation(trainStim.length);
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

async function synthGod(
  dir: string,
  spec: ScaleSpec,
  seed: number,
  scale: SynthScale,
  count: number,
): Promise<SynthSummary> {
  const g = spec.god;
  const worldRng = new Rng(seed, 'synth-world');
  const world = makeWorld(spec, worldRng);
  const test = heldOutCombos(spec.shapes, spec.palettes, g.testCombos, worldRng);
  const combos = Array.from({ length: spec.shapes * spec.palettes }, (_, c) => c);
  const trainCombos = combos.filter((c) => !test.has(c));
  const testCombos = combos.filter((c) => test.has(c));

  const stimRng = new Rng(seed, 'synth-stimuli');
  const toStim = (c: number): Stimulus =>
    drawStimulus(Math.floor(c / spec.palettes), c % spec.palettes, stimRng);
  const trainStim = trainCombos.flatMap((c) => Array.from({ length: g.trainPerClass }, () => toStim(c)));
  const testStim = testCombos.flatMap((c) => Array.from({ length: g.testPerClass }, () => toStim(c)));
  const renderRng = new Rng(seed, 'synth-render');
  const trainImages = renderAll(trainStim, spec, renderRng);
  const testImages = renderAll(testStim, spec, renderRng);

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
    sizes[subject] = subjectSizes(
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
    const sh = SHAPES[Math.floor(c / spec.palettes)]!;
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
  if (scale !== 'paper') {
    await writeFile(join(dir, ROI_PATCH_FILE), JSON.stringify(sizes) + '\n');
    files.push(ROI_PATCH_FILE);
  }
  return { format: 'god', scale, subject: subjects[0]!, subjects, files };
}

/** One BOLD5000 subject's beta files and presentation lists, on the world's shared images. */
async function synthBoldSubject(
  dir: string,
  world: World,
  b: ScaleSpec['bold'],
  seed: number,
  shared: { stimuli: Stimulus[]; images: NdArray; names: string[]; testIdx: number[] },
  n: number,
  roiFiles: [number, number][],
  files: string[],
): Promise<number[]> {
  const subject = `CSI${n}`;
  const { stimuli, images, names, testIdx } = shared;
  const voxRng = new Rng(seed, subjectStream('synth-voxels', n));
  const roiSizes = roiFiles.map(([l, r]) => l + r);
  const rois = roiSizes.map((n, i) => roiModel(n, BOLD_ROI_KINDS[i]!, voxRng));
  const { signal, variance } = signals(stimuli, (i) => pooled(images, i), rois, world);
  const K = variance.length;

  // Trials: each training image once, each test image `repeats` times (the last one once fewer on CSI1).
  const trialImages: number[] = Array.from({ length: b.trainImages }, (_, i) => i);
  testIdx.forEach((img, k) => {
    const reps = b.shortLastRepeat && k === testIdx.length - 1 ? b.repeats - 1 : b.repeats;
    for (let r = 0; r < reps; r++) trialImages.push(img);
  });
  const order = new Rng(seed, subjectStream('synth-order', n)).shuffle(trialImages);
  const T = order.length;
  const betas = new Float32Array(T * K);
  const scanner = new Scanner(variance, new Rng(seed, subjectStream('synth-noise', n)));
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

async function synthBold(
  dir: string,
  spec: ScaleSpec,
  seed: number,
  scale: SynthScale,
  count: number,
): Promise<SynthSummary> {
  const b = spec.bold;
  const worldRng = new Rng(seed, 'synth-world');
  const world = makeWorld(spec, worldRng);
  const classes = spec.shapes * spec.palettes;
  const stimRng = new Rng(seed, 'synth-stimuli');
  const nImages = b.trainImages + b.testImages;
  const stimuli = Array.from({ length: nImages }, () => {
    const c = stimRng.integer(0, classes);
    return drawStimulus(Math.floor(c / spec.palettes), c % spec.palettes, stimRng);
  });
  const images = renderAll(stimuli, spec, new Rng(seed, 'synth-render'));
  const names = stimuli.map((_, i) => `synth_${String(i).padStart(5, '0')}.jpg`);
  const testIdx = Array.from({ length: b.testImages }, (_, i) => b.trainImages + i);

  const files: string[] = [];
  const subjects = Array.from({ length: count }, (_, i) => `CSI${i + 1}`);
  const sizes: Record<string, number[]> = {};
  for (const [i, subject] of subjects.entries()) {
    const roiFiles = b.roiFiles.map((lr) => subjectSizes(lr, i + 1, undefined) as [number, number]);
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
  if (scale !== 'paper') {
    await writeFile(join(dir, ROI_PATCH_FILE), JSON.stringify(sizes) + '\n');
    files.push(ROI_PATCH_FILE);
  }
  return { format: 'bold5000', scale, subject: subjects[0]!, subjects, files };
}

/** Writes the synthetic world into `out` (absent or empty), atomically. */
export async function synthesize(opts: SynthOptions): Promise<SynthSummary> {
  const spec = SYNTH_SCALES[opts.scale];
  const count = opts.subjects ?? 1;
  const max = SYNTH_MAX_SUBJECTS[opts.format];
  if (!Number.isInteger(count) || count < 1 || count > max)
    throw new BadInputError(
      `subjects: a synthetic ${opts.format} world has 1 to ${max} subjects, not ${count}`,
    );
  if (opts.format === 'bold5000' && opts.scale === 'paper' && count > 1)
    throw new BadInputError('the paper-scale BOLD5000 world models CSI1 only (CSI2-4 have other ROI groups)');
  return withOutputDir(opts.out, (dir) =>
    (opts.format === 'god' ? synthGod : synthBold)(dir, spec, opts.seed, opts.scale, count),
  );
}
