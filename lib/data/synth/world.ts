/**
 * The synthetic world's generative model (spec §7, scaled by --scale), shared by both dataset writers:
 * - Classes are shape × palette combinations (tiny: 4 × 4 = 16; small/paper: 20 × 10 = 200). A shape is a
 *   silhouette (polygon, star, ring or pinwheel with 3-8 sides); a palette is a foreground hue. Each image
 *   adds nuisances: shift, scale, rotation, background grey, slight pixel noise. Rendered anti-aliased at
 *   the scale's size (16, 64 or 256 px).
 * - Voxels, early ROIs (GOD V1-V4, BOLD EarlyVis): a Gaussian receptive field (random centre, width
 *   growing V1 → V4) on a 16 × 16 average-pooled copy of the image, with random RGB weights: a linear
 *   read-out of local colour and luminance, so position, silhouette and colour are recoverable.
 * - Voxels, higher ROIs (LOC, FFA, PPA, HVC; LOC, OPA, PPA, RSC): a_v · (α·e_shape + β·e_palette) +
 *   γ·b_v · nuisance attributes, with 8-d random class embeddings. The class code is additive in shape and
 *   palette, so held-out combinations are linear in features seen in training.
 * - Each voxel's signal is standardised over the stimuli and passed through a mild softsign.
 * - Trials: per-voxel offset and gain around (signal + noise); noise is i.i.d. plus a rank-3 structured
 *   part (fixed spatial maps × per-trial N(0,1)), with variance 0.6 × the voxel's signal variance per
 *   single trial, so the signal carries most of the variance.
 * Why both tasks are solvable: decoding (fMRI → image features) is a noisy linear inverse of the early
 * RF read-out plus a linear read-out of the additive class code; encoding (image → fMRI) is the forward
 * map itself, linear in pooled pixels and in the shape/palette/nuisance factors up to the softsign.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Rng } from '../../compute/rng.js';
import { ndarray, type NdArray } from '../../tensors/ndarray.js';
import { ROI_PATCH_FILE } from '../common.js';

export type SynthScale = 'tiny' | 'small' | 'paper';
export type SynthFormat = 'god' | 'bold5000';

export interface ScaleSpec {
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

/** GOD's own split of a 200-class world: 150 training categories of 8 images, 50 held out, shown 35 times. */
const GOD_SPLIT = { testCombos: 50, trainPerClass: 8, testPerClass: 1, repeats: 35 };

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
      ...GOD_SPLIT,
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
      ...GOD_SPLIT,
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

export interface Stimulus {
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
export const SHAPES: { sides: number; style: ShapeStyle }[] = (() => {
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

export function drawStimulus(shape: number, palette: number, rng: Rng): Stimulus {
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
export function heldOutCombos(shapes: number, palettes: number, count: number, rng: Rng): Set<number> {
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
export function renderAll(stimuli: Stimulus[], spec: ScaleSpec, rng: Rng): NdArray {
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
export function pooled(images: NdArray, i: number): Float64Array {
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

export type VoxelKind =
  | { kind: 'early'; sigma: [number, number] }
  | { kind: 'high'; shape: number; palette: number; attrs: number };

/** One ROI's voxels: a sparse RF read-out (early) or class-code loadings (high). */
interface RoiModel {
  size: number;
  response(stimulus: Stimulus, pool: Float64Array, world: World, out: Float64Array, at: number): void;
}

export interface World {
  shapeCode: Float64Array[];
  paletteCode: Float64Array[];
}

export function makeWorld(spec: ScaleSpec, rng: Rng): World {
  const code = (): Float64Array => Float64Array.from({ length: EMBED }, () => rng.normal());
  return {
    shapeCode: Array.from({ length: spec.shapes }, code),
    paletteCode: Array.from({ length: spec.palettes }, code),
  };
}

export function roiModel(size: number, kind: VoxelKind, rng: Rng): RoiModel {
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
export function signals(
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
export class Scanner {
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

export interface SynthSummary {
  format: SynthFormat;
  scale: SynthScale;
  /** The first subject (the one every scale models as the paper's sbj_1 / CSI1). */
  subject: string;
  subjects: string[];
  files: string[];
}

/**
 * The streams of subject n: the first subject keeps the world's unsuffixed streams (so a one-subject world is
 * byte for byte what it always was), later ones draw their own voxels, noise and presentation order.
 */
export const subjectStream = (name: string, n: number): string => (n === 1 ? name : `${name}/subject${n}`);

/** ROI sizes of subject n > 1: the paper's table at paper scale, otherwise the first subject's shrunk 6 % a step. */
export function subjectSizes(
  first: readonly number[],
  n: number,
  paper: readonly number[] | undefined,
): number[] {
  if (n === 1) return [...first];
  if (paper) return [...paper];
  return first.map((v) => Math.max(4, Math.round(v * (1 - 0.06 * (n - 1)))));
}

/** A dataset writer: the world of `seed` at `spec`'s scale, seen by `count` subjects, in its layout under dir. */
export type WorldWriter = (
  dir: string,
  spec: ScaleSpec,
  seed: number,
  scale: SynthScale,
  count: number,
) => Promise<SynthSummary>;

/** Below paper scale the ROI sizes are the world's own: roi_patch.json (subject → sizes) tells prepare. */
export async function writeRoiPatch(
  dir: string,
  scale: SynthScale,
  sizes: Record<string, number[]>,
  files: string[],
): Promise<void> {
  if (scale === 'paper') return;
  await writeFile(join(dir, ROI_PATCH_FILE), JSON.stringify(sizes) + '\n');
  files.push(ROI_PATCH_FILE);
}
