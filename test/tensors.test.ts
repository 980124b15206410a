/**
 * lib/tensors against numpy itself: files numpy writes (every dtype, C and Fortran order, both byte
 * orders, npy versions 1-3, np.savez and np.savez_compressed, pickled image dicts in protocols 2-5) are
 * read here and compared byte for byte with numpy's own C-order little-endian dump; every writer's output
 * is loaded by numpy (and safetensors by an independent json + numpy reader) and compared the same way.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DTYPES, byteView, ndarray } from '../lib/tensors/ndarray.js';
import type { DType, NdArray } from '../lib/tensors/ndarray.js';
import { encodeNpy, parseNpy, readNpy, writeNpy } from '../lib/tensors/npy.js';
import { NpzReader, readNpz, writeNpz } from '../lib/tensors/npz.js';
import { readImageDictNpy, writeImageDictNpy } from '../lib/tensors/pickle.js';
import {
  encodeSafetensors,
  parseSafetensors,
  readSafetensors,
  writeSafetensors,
} from '../lib/tensors/safetensors.js';
import { runOracle } from './helpers/oracle.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lea-tensors-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const NP_NAME: Record<DType, string> = {
  bool: 'bool',
  uint8: 'uint8',
  int32: 'int32',
  int64: 'int64',
  float32: 'float32',
  float64: 'float64',
};

/** Python that builds the same deterministic test array for a dtype name and shape. */
const PY_MAKE = `
import numpy as np
def make(dt, shape):
    n = int(np.prod(shape))
    base = np.arange(n, dtype=np.float64)
    if dt == 'bool': a = (np.arange(n) % 3 == 0)
    elif dt == 'uint8': a = (np.arange(n) * 37 % 256).astype(np.uint8)
    elif dt == 'int32': a = ((base - n / 2) * 123457).astype(np.int32)
    elif dt == 'int64': a = ((base - n / 2) * 98765432123).astype(np.int64)
    elif dt == 'float32': a = (np.sin(base) * 1e3).astype(np.float32)
    else: a = np.cos(base) * 1e-3 + np.exp((base % 50) / 7)
    return a.reshape(shape)
def raw(a):
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes()
`;

function assertSameBytes(actual: NdArray, expected: Uint8Array, what: string): void {
  assert.equal(
    Buffer.compare(Buffer.from(byteView(actual.data)), Buffer.from(expected)),
    0,
    `${what}: data differs from numpy`,
  );
}

describe('npy reader vs numpy-written files', () => {
  it('reads every dtype, both orders, both byte orders and format versions 1-3', async () => {
    const manifest = JSON.parse(
      runOracle(
        PY_MAKE +
          `
import sys, json, os
out = sys.argv[1]
cases = []
for dt in ['bool', 'uint8', 'int32', 'int64', 'float32', 'float64']:
    for shape in [(2, 3, 4), (5,), (), (0, 3), (7, 1, 2)]:
        for order in ['C', 'F']:
            for endian in ['<', '>']:
                for version in [(1, 0), (2, 0), (3, 0)]:
                    a = make(dt, shape)
                    a = a.astype(a.dtype.newbyteorder(endian))
                    a = np.asfortranarray(a) if order == 'F' else np.ascontiguousarray(a)
                    name = f"{dt}_{'x'.join(map(str, shape)) or 'scalar'}_{order}_{'le' if endian == '<' else 'be'}_v{version[0]}"
                    with open(os.path.join(out, name + '.npy'), 'wb') as f:
                        np.lib.format.write_array(f, a, version=version)
                    with open(os.path.join(out, name + '.bin'), 'wb') as f:
                        f.write(raw(a))
                    cases.append({'name': name, 'dtype': dt, 'shape': list(a.shape), 'fortran': bool(a.flags.f_contiguous and not a.flags.c_contiguous)})
print(json.dumps(cases))
`,
        [dir],
      ),
    ) as { name: string; dtype: DType; shape: number[]; fortran: boolean }[];
    assert.ok(manifest.length >= 360);
    assert.ok(manifest.some((c) => c.fortran));
    for (const c of manifest) {
      const arr = await readNpy(join(dir, `${c.name}.npy`));
      assert.equal(arr.dtype, c.dtype, c.name);
      assert.deepEqual(arr.shape, c.shape, c.name);
      assertSameBytes(arr, await readFile(join(dir, `${c.name}.bin`)), c.name);
      const inMemory = parseNpy(await readFile(join(dir, `${c.name}.npy`)), c.name);
      assertSameBytes(inMemory, await readFile(join(dir, `${c.name}.bin`)), `${c.name} (parseNpy)`);
    }
  });
});

describe('npz reader vs np.savez / np.savez_compressed', () => {
  it('keeps the stored key order (keywords before arr_*) and decodes stored and deflated members', async () => {
    const out = JSON.parse(
      runOracle(
        PY_MAKE +
          `
import sys, json, os
d = sys.argv[1]
arrays = [make('float32', (3, 4)), make('int64', (6,))]
kw = {'VC': make('bool', (9,)), 'V1': make('uint8', (2, 2)), 'big': np.asfortranarray(make('float64', (300, 700)).astype('>f8'))}
np.savez(os.path.join(d, 'stored.npz'), *arrays, **kw)
np.savez_compressed(os.path.join(d, 'deflated.npz'), *arrays, **kw)
keys = list(np.load(os.path.join(d, 'stored.npz')).keys())
for k, a in zip(keys, list(kw.values()) + arrays):
    open(os.path.join(d, 'npz_' + k + '.bin'), 'wb').write(raw(a))
print(json.dumps(keys))
`,
        [dir],
      ),
    ) as string[];
    assert.deepEqual(out, ['VC', 'V1', 'big', 'arr_0', 'arr_1']);
    for (const file of ['stored.npz', 'deflated.npz']) {
      const m = await readNpz(join(dir, file));
      assert.deepEqual([...m.keys()], out, file);
      for (const k of out)
        assertSameBytes(m.get(k)!, await readFile(join(dir, `npz_${k}.bin`)), `${file}:${k}`);
      assert.deepEqual(m.get('big')!.shape, [300, 700]);
    }
    const npz = await NpzReader.open(join(dir, 'deflated.npz'));
    try {
      const h = await npz.header('big');
      assert.deepEqual(h.shape, [300, 700]);
      assert.equal(h.fortranOrder, true);
      assert.equal(h.descr, '>f8');
    } finally {
      npz.close();
    }
  });
});

/** The same arrays PY_MAKE builds, made here. */
function makeTs(dtype: DType, shape: number[]): NdArray {
  const arr = ndarray(dtype, shape);
  const n = arr.data.length;
  for (let i = 0; i < n; i++) {
    const base = i;
    switch (dtype) {
      case 'bool':
        (arr.data as Uint8Array)[i] = i % 3 === 0 ? 1 : 0;
        break;
      case 'uint8':
        (arr.data as Uint8Array)[i] = (i * 37) % 256;
        break;
      case 'int32':
        (arr.data as Int32Array)[i] = Math.trunc((base - n / 2) * 123457);
        break;
      case 'int64':
        (arr.data as BigInt64Array)[i] = BigInt(Math.trunc((base - n / 2) * 98765432123));
        break;
      case 'float32':
        (arr.data as Float32Array)[i] = Math.sin(base) * 1e3;
        break;
      case 'float64':
        (arr.data as Float64Array)[i] = Math.cos(base) * 1e-3 + Math.exp((base % 50) / 7);
        break;
    }
  }
  return arr;
}

/** numpy loads what a writer wrote; returns per-file problems (empty when all match). */
function numpyCheck(kind: 'npy' | 'npz' | 'imgdict', files: object[]): string[] {
  return JSON.parse(
    runOracle(
      `
import sys, json, numpy as np
kind, d, files = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
problems = []
def same(a, f, what):
    want = open(f, 'rb').read()
    got = np.ascontiguousarray(a).astype(a.dtype.newbyteorder('<')).tobytes()
    if got != want: problems.append(what + ': bytes differ')
for f in files:
    p = d + '/' + f['file']
    if kind == 'npy':
        a = np.load(p)
        if str(a.dtype) != f['dtype'] or list(a.shape) != f['shape']: problems.append(f['file'] + f': {a.dtype} {a.shape}')
        same(a, p + '.bin', f['file'])
    elif kind == 'npz':
        z = np.load(p)
        if list(z.keys()) != f['keys']: problems.append(f['file'] + ': keys ' + str(list(z.keys())))
        for k in f['keys']: same(z[k], p + '.' + k + '.bin', f['file'] + ':' + k)
    else:
        dct = np.load(p, allow_pickle=True).item()
        if list(dct.keys()) != f['keys']: problems.append('keys ' + str(list(dct.keys())))
        for k in f['keys']:
            if dct[k].dtype != np.uint8: problems.append(k + ' dtype')
            same(dct[k], p + '.' + k + '.bin', k)
print(json.dumps(problems))
`,
      [kind, dir, JSON.stringify(files)],
    ),
  ) as string[];
}

describe('writers round-trip through numpy', () => {
  it('writeNpy and encodeNpy: every dtype and shape', async () => {
    const files: { file: string; dtype: string; shape: number[] }[] = [];
    for (const dtype of DTYPES) {
      for (const shape of [[2, 3, 4], [5], [], [0, 3]]) {
        const arr = makeTs(dtype, shape);
        const file = `w_${dtype}_${shape.join('x') || 'scalar'}.npy`;
        if (shape.length === 1) await writeFile(join(dir, file), encodeNpy(arr));
        else await writeNpy(join(dir, file), arr);
        await writeFile(join(dir, `${file}.bin`), byteView(arr.data));
        files.push({ file, dtype: NP_NAME[dtype], shape });
        assertSameBytes(await readNpy(join(dir, file)), byteView(arr.data), file);
      }
    }
    assert.deepEqual(numpyCheck('npy', files), []);
  });

  it('writeNpz: stored and deflated, key order kept, numpy and this reader agree', async () => {
    const entries: [string, NdArray][] = [
      ['V1', makeTs('bool', [50])],
      ['train', makeTs('float32', [40, 30])],
      ['arr_0', makeTs('int64', [7])],
      ['big', makeTs('float64', [512, 1100])], // several write slices and inflate chunks
    ];
    const files = [];
    for (const compress of [false, true]) {
      const file = `w_${compress ? 'deflated' : 'stored'}.npz`;
      await writeNpz(join(dir, file), entries, { compress });
      for (const [k, a] of entries) await writeFile(join(dir, `${file}.${k}.bin`), byteView(a.data));
      files.push({ file, keys: entries.map(([k]) => k) });
      const back = await readNpz(join(dir, file));
      assert.deepEqual([...back.keys()], ['V1', 'train', 'arr_0', 'big']);
      for (const [k, a] of entries) assertSameBytes(back.get(k)!, byteView(a.data), `${file}:${k}`);
    }
    assert.deepEqual(numpyCheck('npz', files), []);
  });

  it('writeImageDictNpy: numpy unpickles it to the same dict', async () => {
    const images: [string, NdArray][] = [
      ['rep_a.jpg', makeTs('uint8', [4, 5, 3])],
      ['COCO_train2014_000000000036.jpg', makeTs('uint8', [300, 20, 3])], // > 256 rows: BININT2 dims
    ];
    await writeImageDictNpy(join(dir, 'img_dict.npy'), images);
    for (const [k, a] of images) await writeFile(join(dir, `img_dict.npy.${k}.bin`), byteView(a.data));
    assert.deepEqual(numpyCheck('imgdict', [{ file: 'img_dict.npy', keys: images.map(([k]) => k) }]), []);
    const back = await readImageDictNpy(join(dir, 'img_dict.npy'));
    assert.deepEqual(
      [...back.keys()],
      images.map(([k]) => k),
    );
  });
});

describe('strict pickle reader vs numpy-pickled image dicts', () => {
  it('reads protocols 2-5 and np.save itself, including Fortran-order images', async () => {
    const names = JSON.parse(
      runOracle(
        PY_MAKE +
          `
import sys, json, os, pickle
d = sys.argv[1]
imgs = {'n01440764_10026.JPEG': make('uint8', (6, 7, 3)), 'rep_scene.jpg': np.asfortranarray(make('uint8', (5, 4, 3))), 'empty_ok.jpg': make('uint8', (1, 1, 3))}
for k, a in imgs.items(): open(os.path.join(d, 'pk_' + k + '.bin'), 'wb').write(raw(a))
np.save(os.path.join(d, 'pk_npsave.npy'), imgs, allow_pickle=True)
for proto in [2, 3, 4, 5]:
    with open(os.path.join(d, f'pk_p{proto}.npy'), 'wb') as f:
        np.lib.format.write_array_header_1_0(f, {'descr': '|O', 'fortran_order': False, 'shape': ()})
        pickle.dump(np.array(imgs, dtype=object), f, protocol=proto)
print(json.dumps(list(imgs.keys())))
`,
        [dir],
      ),
    ) as string[];
    for (const file of ['pk_npsave.npy', 'pk_p2.npy', 'pk_p3.npy', 'pk_p4.npy', 'pk_p5.npy']) {
      const m = await readImageDictNpy(join(dir, file));
      assert.deepEqual([...m.keys()], names, file);
      for (const k of names) {
        const a = m.get(k)!;
        assert.equal(a.dtype, 'uint8');
        assertSameBytes(a, await readFile(join(dir, `pk_${k}.bin`)), `${file}:${k}`);
      }
      assert.deepEqual(m.get('rep_scene.jpg')!.shape, [5, 4, 3]);
    }
  });
});

describe('safetensors', () => {
  it('writer output is read by an independent json + numpy reader', async () => {
    const tensors: [string, NdArray][] = DTYPES.map((d, i) => [
      `layer.${i}.${d}`,
      makeTs(d, i % 2 ? [3, 5] : [7]),
    ]);
    tensors.push(['empty', makeTs('float32', [0, 4])]);
    const metadata = { format: 'pt', step: '1200' };
    await writeSafetensors(join(dir, 'w.safetensors'), tensors, metadata);
    const inMemory = encodeSafetensors(tensors, metadata);
    assert.equal(Buffer.compare(Buffer.from(inMemory), await readFile(join(dir, 'w.safetensors'))), 0);
    for (const [k, a] of tensors) await writeFile(join(dir, `st_${k}.bin`), byteView(a.data));
    const problems = JSON.parse(
      runOracle(
        `
import sys, json, struct, numpy as np
d = sys.argv[1]
buf = open(d + '/w.safetensors', 'rb').read()
n = struct.unpack('<Q', buf[:8])[0]
assert (8 + n) % 8 == 0, 'data not aligned'
header = json.loads(buf[8:8 + n])
problems = []
if header.pop('__metadata__') != {'format': 'pt', 'step': '1200'}: problems.append('metadata')
types = {'F32': '<f4', 'F64': '<f8', 'I32': '<i4', 'I64': '<i8', 'U8': 'u1', 'BOOL': '?'}
for k, v in header.items():
    b, e = v['data_offsets']
    a = np.frombuffer(buf[8 + n + b:8 + n + e], dtype=types[v['dtype']]).reshape(v['shape'])
    if a.tobytes() != open(d + '/st_' + k + '.bin', 'rb').read(): problems.append(k)
print(json.dumps(problems))
`,
        [dir],
      ),
    ) as string[];
    assert.deepEqual(problems, []);
  });

  it('reads a file written by an independent writer, and parses in memory identically', async () => {
    runOracle(
      PY_MAKE +
        `
import sys, json, struct
d = sys.argv[1]
ts = {'b.weight': make('float32', (4, 3)), 'a.bias': make('float64', (5,)), 'mask': make('bool', (6,)), 'ids': make('int64', (2, 2))}
names = {'float32': 'F32', 'float64': 'F64', 'bool': 'BOOL', 'int64': 'I64'}
header, data = {'__metadata__': {'note': 'from python'}}, b''
for k in sorted(ts):
    raw_ = raw(ts[k]); header[k] = {'dtype': names[str(ts[k].dtype)], 'shape': list(ts[k].shape), 'data_offsets': [len(data), len(data) + len(raw_)]}; data += raw_
    open(d + '/py_' + k + '.bin', 'wb').write(raw_)
h = json.dumps(header).encode()
open(d + '/py.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + data)
`,
      [dir],
    );
    const file = await readSafetensors(join(dir, 'py.safetensors'));
    assert.deepEqual(file.metadata, { note: 'from python' });
    assert.deepEqual([...file.tensors.keys()].sort(), ['a.bias', 'b.weight', 'ids', 'mask']);
    for (const [k, a] of file.tensors) assertSameBytes(a, await readFile(join(dir, `py_${k}.bin`)), k);
    const mem = parseSafetensors(await readFile(join(dir, 'py.safetensors')), 'py.safetensors');
    for (const [k, a] of mem.tensors) assertSameBytes(a, byteView(file.tensors.get(k)!.data), k);
  });
});
