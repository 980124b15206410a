/**
 * Image tiles of the reconstruction grid as PNG (fast-png). Small images (16 px in the miniature) are
 * enlarged by an integer factor with nearest neighbour, so every pixel stays a crisp square on screen, in
 * print and in PDF viewers that would otherwise smooth them.
 */
import { encode } from 'fast-png';
import type { NdArray } from '../tensors/ndarray.js';

/** Tiles are enlarged to at least this many pixels on their longer side. */
export const MIN_TILE_PX = 128;

export function upscaleFactor(height: number, width: number): number {
  return Math.max(1, Math.ceil(MIN_TILE_PX / Math.max(height, width)));
}

/**
 * The PNG of one RGB image inside a uint8 array whose last three axes are [H, W, 3]; `index` counts the
 * images in C order over the leading axes.
 */
export function rgbTilePng(images: NdArray, index: number): Uint8Array {
  const [h, w] = images.shape.slice(-3) as [number, number];
  const f = upscaleFactor(h, w);
  const src = images.data as Uint8Array;
  const base = index * h * w * 3;
  const out = new Uint8Array(h * f * w * f * 3);
  const rowBytes = w * f * 3;
  for (let y = 0; y < h; y++) {
    const row = out.subarray(y * f * rowBytes, (y * f + 1) * rowBytes);
    for (let x = 0; x < w; x++) {
      const s = base + (y * w + x) * 3;
      for (let k = 0; k < f; k++) row.set(src.subarray(s, s + 3), (x * f + k) * 3);
    }
    // the other f-1 output rows of this source row are copies of the first
    for (let k = 1; k < f; k++)
      out.copyWithin((y * f + k) * rowBytes, y * f * rowBytes, (y * f + 1) * rowBytes);
  }
  return encode({ width: w * f, height: h * f, data: out, depth: 8, channels: 3 });
}
