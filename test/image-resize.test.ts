/**
 * lib/images/resize.ts against Pillow itself (the oracle venv): both filters of data.imageResize, down- and
 * up-scaling a non-square synthetic image, pixel for pixel; and the image set's stored images kept beside the
 * resized ones for CLIP (data.clipInput stored).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { prepareImages, STORED_IMAGE_FILES } from '../lib/data/prepare.js';
import { synthesize } from '../lib/data/synth.js';
import { resizePil } from '../lib/images/resize.js';
import type { ResizeFilter } from '../lib/images/resize.js';
import { runOracle } from './helpers/oracle.js';

const PIL_RESIZE = `
import sys
from PIL import Image
h, w, oh, ow = map(int, sys.argv[2:6])
img = Image.frombytes('RGB', (w, h), open(sys.argv[1], 'rb').read())
filt = {'bilinear': Image.BILINEAR, 'bicubic': Image.BICUBIC}[sys.argv[6]]
sys.stdout.write(img.resize((ow, oh), filt).tobytes().hex())
`;

test('bilinear and bicubic resizes equal PIL pixel for pixel', () => {
  const [h, w] = [37, 53];
  // a gradient with hard edges and a pseudo-random texture, so every tap and the clipping are exercised
  const data = Uint8Array.from({ length: h * w * 3 }, (_, i) => {
    const [y, x, c] = [Math.floor(i / (w * 3)), Math.floor(i / 3) % w, i % 3];
    return ((x * 7 + y * 3) * (c + 1) + ((x * 2654435761 + y * 40503) >>> 27) * 9 + (x > 30 ? 120 : 0)) & 255;
  });
  const dir = mkdtempSync(join(tmpdir(), 'lea-resize-'));
  try {
    const file = join(dir, 'img.rgb');
    writeFileSync(file, data);
    for (const filter of ['bilinear', 'bicubic'] as ResizeFilter[]) {
      // down by non-integer factors, up, and one side kept
      for (const [oh, ow] of [
        [16, 16],
        [11, 29],
        [64, 80],
        [37, 20],
      ] as const) {
        const ours = resizePil({ data, height: h, width: w, channels: 3 }, oh, ow, filter);
        const pil = runOracle(PIL_RESIZE, [file, `${h}`, `${w}`, `${oh}`, `${ow}`, filter]);
        assert.equal(Buffer.from(ours.data).toString('hex'), pil, `${filter} ${oh}x${ow}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an image set keeps its stored images beside the resized ones when asked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-stored-'));
  try {
    const world = join(dir, 'world');
    await synthesize({ format: 'bold5000', out: world, seed: 3, scale: 'tiny' });
    const plain = join(dir, 'plain');
    const kept = join(dir, 'kept');
    await prepareImages({ dataset: 'bold5000', path: world, out: plain });
    const meta = await prepareImages({
      dataset: 'bold5000',
      path: world,
      out: kept,
      imageSize: 24,
      keepStored: true,
    });
    assert.ok(meta.image.resizedFrom, 'the images were resized');
    for (const split of ['train', 'test'] as const) {
      const stored = readFileSync(join(kept, STORED_IMAGE_FILES[split]));
      assert.ok(stored.equals(readFileSync(join(plain, `${split}_images.npy`))), split);
    }
    assert.ok(meta.files.includes(STORED_IMAGE_FILES.train));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
