/**
 * Image resizing and cropping exactly as the reference preprocessing computes them on PIL images, so that
 * imported networks see the same pixels as upstream: PIL's antialiased bilinear and bicubic `Image.resize`
 * (Pillow's src/libImaging/Resample.c, 8-bit path), torchvision's `Resize(S)` output size and `CenterCrop` offsets.
 * Images are uint8, row-major [height, width, channels].
 */

export interface Image8 {
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

/** Resample.c's PRECISION_BITS: 8 bits of result, 2 for the over/undershoot of negative filter lobes. */
const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);

/** A Resample.c filter: its kernel and support (in input pixels at scale 1). */
interface Filter {
  kernel(x: number): number;
  support: number;
}

/** PIL's filters by name (Resample.c's filter table): torchvision's bilinear and bicubic on PIL images. */
const FILTERS = {
  /** The triangle (bilinear_filter), support 1. */
  bilinear: {
    kernel: (x: number) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
    support: 1,
  },
  /** Keys's cubic with a = -0.5 (bicubic_filter), support 2. */
  bicubic: {
    kernel: (x: number) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
    support: 2,
  },
} as const satisfies Record<string, Filter>;
export type ResizeFilter = keyof typeof FILTERS;

interface Coeffs {
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** Per output pixel: `ksize` fixed-point weights (only the first `taps` are used). */
  weights: Int32Array;
  ksize: number;
}

/**
 * precompute_coeffs + normalize_coeffs_8bpc for the whole input range (box [0, inSize]): the filter is
 * stretched by the downscale factor (antialiasing), weights normalised in double precision, then rounded
 * half away from zero to fixed point.
 */
function coefficients(inSize: number, outSize: number, filter: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const taps = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < taps; x++) {
      const w = filter.kernel((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < taps; x++) {
      const w = ww !== 0 ? (k[x] as number) / ww : (k[x] as number);
      const f = w * (1 << PRECISION_BITS);
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + f) : Math.trunc(0.5 + f);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = taps;
  }
  return { bounds, weights, ksize };
}

/** clip8: the accumulator's integer part, clamped to [0, 255]. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * PIL's `img.resize((outWidth, outHeight), filter)` for an 8-bit image: a horizontal pass over only the input
 * rows the vertical pass reads, then a vertical pass, each rounding and clipping to uint8. A dimension that
 * keeps its size is not resampled (as in ImagingResampleInner).
 */
export function resizePil(
  img: Image8,
  outHeight: number,
  outWidth: number,
  filterName: ResizeFilter,
): Image8 {
  const filter: Filter = FILTERS[filterName];
  const { height, width, channels: c } = img;
  if (!(outHeight >= 1 && outWidth >= 1 && Number.isInteger(outHeight) && Number.isInteger(outWidth)))
    throw new RangeError(`resize: invalid output size ${outHeight}x${outWidth}`);
  const vert = coefficients(height, outHeight, filter);
  const firstRow = vert.bounds[0] as number;
  const lastRow = (vert.bounds[outHeight * 2 - 2] as number) + (vert.bounds[outHeight * 2 - 1] as number);

  let src = img.data;
  let rowOffset = 0;
  let srcWidth = width;
  if (outWidth !== width) {
    const { bounds, weights, ksize } = coefficients(width, outWidth, filter);
    const rows = lastRow - firstRow;
    const tmp = new Uint8Array(rows * outWidth * c);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + firstRow) * width * c;
      const outRow = y * outWidth * c;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2] as number;
        const taps = bounds[xx * 2 + 1] as number;
        const kOff = xx * ksize;
        for (let ch = 0; ch < c; ch++) {
          let acc = HALF;
          for (let x = 0; x < taps; x++)
            acc += (src[inRow + (xmin + x) * c + ch] as number) * (weights[kOff + x] as number);
          tmp[outRow + xx * c + ch] = clip8(acc);
        }
      }
    }
    src = tmp;
    rowOffset = firstRow;
    srcWidth = outWidth;
  }
  if (outHeight === height) {
    return { data: src === img.data ? src.slice() : src, height, width: srcWidth, channels: c };
  }
  const out = new Uint8Array(outHeight * srcWidth * c);
  const rowLen = srcWidth * c;
  const { bounds, weights, ksize } = vert;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = (bounds[yy * 2] as number) - rowOffset;
    const taps = bounds[yy * 2 + 1] as number;
    const kOff = yy * ksize;
    for (let i = 0; i < rowLen; i++) {
      let acc = HALF;
      for (let y = 0; y < taps; y++)
        acc += (src[(ymin + y) * rowLen + i] as number) * (weights[kOff + y] as number);
      out[yy * rowLen + i] = clip8(acc);
    }
  }
  return { data: out, height: outHeight, width: srcWidth, channels: c };
}

/**
 * torchvision `Resize(size)` with an int: the shorter side becomes `size`, the longer int(size · long / short)
 * (truncated, as _compute_resized_output_size does). Returns [height, width].
 */
export function shorterSideSize(height: number, width: number, size: number): [number, number] {
  if (width <= height) return [Math.trunc((size * height) / width), size];
  return [size, Math.trunc((size * width) / height)];
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision `CenterCrop`: top = round((h − th) / 2), left = round((w − tw) / 2), Python rounding. */
export function centreCrop(img: Image8, cropHeight: number, cropWidth: number): Image8 {
  const { height, width, channels: c } = img;
  if (cropHeight > height || cropWidth > width)
    throw new RangeError(
      `centre crop ${cropHeight}x${cropWidth} is larger than the ${height}x${width} image`,
    );
  const top = roundHalfEven((height - cropHeight) / 2);
  const left = roundHalfEven((width - cropWidth) / 2);
  const out = new Uint8Array(cropHeight * cropWidth * c);
  for (let y = 0; y < cropHeight; y++) {
    const from = ((top + y) * width + left) * c;
    out.set(img.data.subarray(from, from + cropWidth * c), y * cropWidth * c);
  }
  return { data: out, height: cropHeight, width: cropWidth, channels: c };
}

/** `Resize(size, BICUBIC)` then `CenterCrop(size)` on a PIL image: open_clip's and torchvision's eval path. */
export function resizeShorterAndCrop(img: Image8, size: number): Image8 {
  const [h, w] = shorterSideSize(img.height, img.width, size);
  // torchvision returns the image untouched when it already has the target size
  const resized = h === img.height && w === img.width ? img : resizePil(img, h, w, 'bicubic');
  return centreCrop(resized, size, size);
}
