/**
 * Opens an upstream checkpoint of any supported format, told apart by its first bytes rather than its
 * name: a zip ('PK\x03\x04') is torch.save's, a pickle of torch's magic number (`80 02 8a 0a` + the
 * number) is torch.save's legacy format, an 8-byte little-endian length followed by '{' is safetensors,
 * and a msgpack map is Flax's. Nothing in the file is executed.
 */
import { BadInputError } from '../errors.js';
import { openFlaxMsgpack } from '../tensors/flax-msgpack.js';
import { openForReading, readFully } from '../tensors/files.js';
import { shapeSize } from '../tensors/ndarray.js';
import type { NdArray } from '../tensors/ndarray.js';
import { indexSafetensors } from '../tensors/safetensors.js';
import { SOURCE_ITEMSIZE, decodeTensorBytes } from '../tensors/source-dtypes.js';
import { legacyMagicEnd, openTorchLegacy } from '../tensors/torch-legacy.js';
import { openTorchZip } from '../tensors/torch-zip.js';
import type { CheckpointFormat, CheckpointSource, OpenOptions, TensorRef } from './source.js';

/** The format the first bytes announce, or undefined. */
export function sniffCheckpoint(head: Uint8Array): CheckpointFormat | undefined {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)
    return 'torch-zip';
  // before the msgpack test: 0x80 is also a msgpack fixmap
  if (legacyMagicEnd(head) !== undefined) return 'torch-legacy';
  if (head.length >= 9 && head[8] === 0x7b) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n > 0n && n < 1n << 40n) return 'safetensors';
  }
  const b = head[0];
  if (b !== undefined && ((b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf)) return 'flax-msgpack';
  return undefined;
}

async function openSafetensorsSource(path: string): Promise<CheckpointSource> {
  const fh = await openForReading(path);
  try {
    const { slots, metadata, dataStart } = await indexSafetensors(fh, path);
    const tensors = new Map<string, TensorRef>();
    for (const s of slots) {
      const where = `${path}: tensor '${s.name}'`;
      tensors.set(s.name, {
        name: s.name,
        dtype: s.dtype,
        shape: s.shape,
        async read(): Promise<NdArray> {
          const bytes = new Uint8Array(shapeSize(s.shape) * SOURCE_ITEMSIZE[s.dtype]);
          if ((await readFully(fh, bytes, dataStart + s.begin)) !== bytes.length)
            throw new BadInputError(`${where}: file truncated inside the tensor`);
          return decodeTensorBytes(s.dtype, s.shape, bytes, where);
        },
      });
    }
    return { path, format: 'safetensors', tensors, extras: { ...metadata }, close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** Opens `path` lazily: only the structure is read until a tensor's `read()`. Call `close()` when done. */
export async function openCheckpoint(path: string, opts: OpenOptions = {}): Promise<CheckpointSource> {
  const fh = await openForReading(path);
  const head = new Uint8Array(32);
  let got: number;
  try {
    got = await readFully(fh, head, 0);
  } finally {
    await fh.close();
  }
  switch (sniffCheckpoint(head.subarray(0, got))) {
    case 'torch-zip':
      return openTorchZip(path, opts);
    case 'torch-legacy':
      return openTorchLegacy(path, opts);
    case 'safetensors':
      return openSafetensorsSource(path);
    case 'flax-msgpack':
      return openFlaxMsgpack(path);
    case undefined:
      throw new BadInputError(
        `${path}: not a checkpoint this reader knows (torch.save zip or legacy, safetensors or Flax msgpack)`,
      );
  }
}
