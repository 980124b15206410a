/**
 * A corpus of broken dataset files. Each case copies the tiny synthetic world, breaks one file, runs
 * `prepare` and expects a BadInputError whose message names the broken file and the problem, with nothing
 * left at (or beside) the output path. A few reader-level cases (safetensors) have no output to check.
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BOLD_BETA_DIR, BOLD_IMG_DICT, BOLD_LIST_DIR, BOLD_REPEATED_FILE } from '../lib/data/bold5000.js';
import type { DatasetName } from '../lib/data/common.js';
import { prepareDataset } from '../lib/data/prepare.js';
import { synthesize } from '../lib/data/synth.js';
import { BadInputError } from '../lib/errors.js';
import { ndarray } from '../lib/tensors/ndarray.js';
import type { NdArray } from '../lib/tensors/ndarray.js';
import { readNpz, writeNpz } from '../lib/tensors/npz.js';
import { readImageDictNpy, writeImageDictNpy } from '../lib/tensors/pickle.js';
import { encodeSafetensors, parseSafetensors, readSafetensors } from '../lib/tensors/safetensors.js';
import { runOracle } from './helpers/oracle.js';

let root: string;
const base: Record<DatasetName, string> = { god: '', bold5000: '' };

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'lea-bad-'));
  base.god = join(root, 'base-god');
  base.bold5000 = join(root, 'base-bold');
  await synthesize({ format: 'god', out: base.god, seed: 11, scale: 'tiny' });
  await synthesize({ format: 'bold5000', out: base.bold5000, seed: 11, scale: 'tiny' });
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const LHLOC = join(BOLD_BETA_DIR, 'CSI1_GLMbetas-TYPED-FITHRF-GLMDENOISE-RR_allses_LHLOC.npy');
const RUN1 = join(BOLD_LIST_DIR, 'CSI1', 'CSI1_sess02', 'CSI1_sess02_run01.txt');

/** Rewrites the header text of an .npy file (keeping its data), recomputing the length field. */
async function rewriteNpyHeader(path: string, edit: (header: string) => string): Promise<void> {
  const buf = await readFile(path);
  const len = buf.readUInt16LE(8);
  const header = edit(buf.subarray(10, 10 + len).toString('latin1'));
  const out = Buffer.alloc(10 + header.length);
  buf.copy(out, 0, 0, 8);
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  await writeFile(path, Buffer.concat([out, buf.subarray(10 + len)]));
}

/** Rewrites an npz through the library (keeping key order), editing the arrays on the way. */
async function editNpz(
  path: string,
  edit: (entries: [string, NdArray][]) => [string, NdArray][],
): Promise<void> {
  const entries = edit([...(await readNpz(path)).entries()]);
  await rm(path);
  await writeNpz(path, entries, { compress: false });
}

/** Runs Python that writes a crafted file at sys.argv[1]. */
function craft(path: string, code: string): void {
  runOracle(`import sys, os, io, struct, pickle, zipfile, numpy as np\npath = sys.argv[1]\n${code}`, [path]);
}

/** A zip member holding an npy header for `shape` uint8 followed by `zeros` zero bytes, deflated. */
const ZIP_MEMBER = `
def member(shape, zeros):
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {'descr': '|u1', 'fortran_order': False, 'shape': shape})
    return f.getvalue(), f.getvalue() + bytes(zeros)
def patch_sizes(path, declared):
    b = bytearray(open(path, 'rb').read())
    i = b.index(b'PK\\x03\\x04'); struct.pack_into('<I', b, i + 22, declared)
    j = b.index(b'PK\\x01\\x02'); struct.pack_into('<I', b, j + 24, declared)
    open(path, 'wb').write(bytes(b))
`;

interface Case {
  name: string;
  dataset: DatasetName;
  /** The file the message must name, relative to the dataset folder. */
  file: string;
  problem: RegExp;
  breakIt: (dir: string) => Promise<void>;
  /** Check after the failure (e.g. that a pickle's payload did not run). */
  also?: (dir: string) => void;
}

const cases: Case[] = [
  {
    name: 'truncated npy',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /header promises shape \[648, 32\] \(82944 data bytes\) but the file holds 82844/,
    breakIt: async (d) => {
      const f = join(d, LHLOC);
      await truncate(f, (await readFile(f)).length - 100);
    },
  },
  {
    name: 'npy wrong magic',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /not an npy file \(wrong magic bytes\)/,
    breakIt: async (d) => {
      const buf = await readFile(join(d, LHLOC));
      buf.write('PK', 0, 'latin1');
      await writeFile(join(d, LHLOC), buf);
    },
  },
  {
    name: 'npy header lies about the shape',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /header promises shape \[700, 32\]/,
    breakIt: (d) => rewriteNpyHeader(join(d, LHLOC), (h) => h.replace('(648, 32)', '(700, 32)')),
  },
  {
    name: 'npy header claims a huge shape',
    dataset: 'bold5000',
    file: LHLOC,
    problem:
      /header promises shape \[64800000000, 32\] \(8294400000000 data bytes\) but the file holds 82944/,
    breakIt: (d) => rewriteNpyHeader(join(d, LHLOC), (h) => h.replace('(648, 32)', '(64800000000, 32)')),
  },
  {
    name: 'npy with an unsupported dtype',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /unsupported dtype '<f2'/,
    breakIt: (d) => rewriteNpyHeader(join(d, LHLOC), (h) => h.replace("'<f4'", "'<f2'")),
  },
  {
    name: 'npy header with code instead of a literal',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /malformed npy header \(expected a string/,
    breakIt: (d) =>
      rewriteNpyHeader(join(d, LHLOC), (h) => h.replace("'<f4'", "__import__('os').system('touch pwned')")),
    also: (d) => assert.equal(existsSync(join(d, 'pwned')), false),
  },
  {
    name: 'npy header with an unknown key',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /unexpected key 'extra'/,
    breakIt: (d) => rewriteNpyHeader(join(d, LHLOC), (h) => h.replace("'shape'", "'extra': True, 'shape'")),
  },
  {
    name: 'NaN in BOLD betas',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /non-finite value \(NaN\) at row 17, voxel 5/,
    breakIt: async (d) => {
      const buf = await readFile(join(d, LHLOC));
      buf.writeFloatLE(Number.NaN, 128 + (17 * 32 + 5) * 4);
      await writeFile(join(d, LHLOC), buf);
    },
  },
  {
    name: 'beta files disagree on the trial count',
    dataset: 'bold5000',
    file: LHLOC,
    problem: /647 trials but .*LHEarlyVis\.npy has 648/,
    breakIt: async (d) => {
      await rewriteNpyHeader(join(d, LHLOC), (h) => h.replace('(648, 32)', '(647, 32)'));
      await truncate(join(d, LHLOC), (await readFile(join(d, LHLOC))).length - 32 * 4);
    },
  },
  {
    name: 'missing presentation list',
    dataset: 'bold5000',
    file: join(BOLD_LIST_DIR, 'CSI1'),
    problem: /presentation lists name \d+ trials but the betas have 648/,
    breakIt: (d) => rm(join(d, RUN1)),
  },
  {
    name: 'missing presentation list directory',
    dataset: 'bold5000',
    file: join(BOLD_LIST_DIR, 'CSI1'),
    problem: /missing presentation list directory for CSI1/,
    breakIt: (d) => rm(join(d, BOLD_LIST_DIR, 'CSI1'), { recursive: true }),
  },
  {
    name: 'missing repeated-stimuli list',
    dataset: 'bold5000',
    file: BOLD_REPEATED_FILE,
    problem: /missing list of repeated stimuli/,
    breakIt: (d) => rm(join(d, BOLD_REPEATED_FILE)),
  },
  {
    name: 'image dictionary lacks a presented image',
    dataset: 'bold5000',
    file: BOLD_IMG_DICT,
    problem: /no image for presented stimulus 'synth_00003\.jpg'/,
    breakIt: async (d) => {
      const images = await readImageDictNpy(join(d, BOLD_IMG_DICT));
      images.delete('synth_00003.jpg');
      await rm(join(d, BOLD_IMG_DICT));
      await writeImageDictNpy(join(d, BOLD_IMG_DICT), images);
    },
  },
  {
    name: 'pickle calling os.system',
    dataset: 'bold5000',
    file: BOLD_IMG_DICT,
    problem: /pickle rejected at byte \d+: disallowed global posix\.system/,
    breakIt: async (d) =>
      craft(
        join(d, BOLD_IMG_DICT),
        `class Evil:
    def __reduce__(self): return (os.system, ('touch ' + os.path.join(os.path.dirname(path), 'pwned'),))
with open(path, 'wb') as f:
    np.lib.format.write_array_header_1_0(f, {'descr': '|O', 'fortran_order': False, 'shape': ()})
    pickle.dump(Evil(), f, protocol=2)`,
      ),
    also: (d) => assert.equal(existsSync(join(d, dirname(BOLD_IMG_DICT), 'pwned')), false),
  },
  {
    name: 'pickle with a disallowed opcode',
    dataset: 'bold5000',
    file: BOLD_IMG_DICT,
    problem: /disallowed opcode 0x64 \(DICT\)/,
    breakIt: async (d) =>
      craft(
        join(d, BOLD_IMG_DICT),
        `with open(path, 'wb') as f:
    np.lib.format.write_array_header_1_0(f, {'descr': '|O', 'fortran_order': False, 'shape': ()})
    f.write(pickle.dumps({'a': 1}, protocol=0))`,
      ),
  },
  {
    name: 'pickle of float images',
    dataset: 'bold5000',
    file: BOLD_IMG_DICT,
    problem: /dtype 'f8' is not allowed/,
    breakIt: async (d) =>
      craft(
        join(d, BOLD_IMG_DICT),
        `np.save(path, {'synth_00000.jpg': np.zeros((16, 16, 3))}, allow_pickle=True)`,
      ),
  },
  {
    name: 'roi_patch does not add up to the BOLD voxels',
    dataset: 'bold5000',
    file: BOLD_BETA_DIR,
    problem: /hold 256 voxels .* roi_patch \[80, 64, 32, 48, 40\] sums to 264/,
    breakIt: (d) => writeFile(join(d, 'roi_patch.json'), JSON.stringify({ CSI1: [80, 64, 32, 48, 40] })),
  },
  {
    name: 'mismatched roi_patch (GOD)',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem:
      /ROI groups from the first 10 keys \(V1, V2, V3, V4, LOC, FFA, PPA, HVC\) have sizes \[40, 40, 32, 32, 24, 24, 16, 48\] but roi_patch for sbj_1 is \[40, 40, 32, 32, 24, 24, 48, 16\]/,
    breakIt: (d) =>
      writeFile(join(d, 'roi_patch.json'), JSON.stringify({ sbj_1: [40, 40, 32, 32, 24, 24, 48, 16] })),
  },
  {
    name: 'NaN in GOD training fMRI',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem: /arr_0 has a non-finite value \(NaN\) at row 3, voxel \d+/,
    breakIt: (d) =>
      editNpz(join(d, 'sbj_1.npz'), (e) => {
        const vc = e.find(([k]) => k === 'VC')![1].data as Uint8Array;
        const arr0 = e.find(([k]) => k === 'arr_0')![1];
        (arr0.data as Float32Array)[3 * arr0.shape[1]! + vc.indexOf(1)] = Number.NaN;
        return e;
      }),
  },
  {
    name: 'fewer than ten ROI masks before arr_*',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem:
      /key 'arr_0' \(one of the first 10\) must be a boolean ROI mask of length 288, found float32 \[600, 288\]/,
    breakIt: (d) => editNpz(join(d, 'sbj_1.npz'), (e) => e.filter(([k]) => k !== 'LVC')),
  },
  {
    name: 'mask holding a byte other than 0/1',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem: /member 'V2\.npy': bool array holds byte values other than 0 and 1/,
    breakIt: (d) =>
      editNpz(join(d, 'sbj_1.npz'), (e) => {
        (e.find(([k]) => k === 'V2')![1].data as Uint8Array)[0] = 2;
        return e;
      }),
  },
  {
    name: 'image index out of range',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem: /arr_3\[0\] = 9999 is not a row of train_images \(0\.\.599\)/,
    breakIt: (d) =>
      editNpz(join(d, 'sbj_1.npz'), (e) => {
        (e.find(([k]) => k === 'arr_3')![1].data as BigInt64Array)[0] = 9999n;
        return e;
      }),
  },
  {
    name: 'missing averaged test fMRI',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem: /missing array 'arr_2'/,
    breakIt: (d) => editNpz(join(d, 'sbj_1.npz'), (e) => e.filter(([k]) => k !== 'arr_2')),
  },
  {
    name: 'float test images',
    dataset: 'god',
    file: 'images_256.npz',
    problem: /test_images must be uint8 \[N, H, W, 3\], found float32 \[12, 16, 16, 3\]/,
    breakIt: (d) =>
      editNpz(join(d, 'images_256.npz'), (e) =>
        e.map(([k, a]) => [k, k === 'test_images' ? ndarray('float32', a.shape) : a]),
      ),
  },
  {
    name: 'npz that is not a zip',
    dataset: 'god',
    file: 'sbj_1.npz',
    problem: /not a readable npz\/zip archive/,
    breakIt: (d) => writeFile(join(d, 'sbj_1.npz'), Buffer.from('\x93NUMPY this is an npy, not an npz')),
  },
  {
    name: 'truncated npz',
    dataset: 'god',
    file: 'images_256.npz',
    problem: /not a readable npz\/zip archive/,
    breakIt: async (d) => truncate(join(d, 'images_256.npz'), 100_000),
  },
  {
    name: 'zip bomb: declared size beyond deflate ratio',
    dataset: 'god',
    file: 'images_256.npz',
    problem:
      /member 'train_images\.npy' declares 4294967280 bytes from \d+ compressed, beyond deflate's 1032:1 maximum/,
    breakIt: async (d) =>
      craft(
        join(d, 'images_256.npz'),
        ZIP_MEMBER +
          `head, data = member((1024, 1024, 4, 3), 4 * 2**20)
with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('train_images.npy', data)
patch_sizes(path, 0xFFFFFFF0)`,
      ),
  },
  {
    name: 'zip bomb: member inflates past its declared size',
    dataset: 'god',
    file: 'images_256.npz',
    problem: /member 'train_images\.npy'.*(more data than the header's shape|too many bytes|corrupt data)/,
    breakIt: async (d) =>
      craft(
        join(d, 'images_256.npz'),
        ZIP_MEMBER +
          `head, data = member((1, 2, 2, 3), 8 * 2**20)
test = io.BytesIO(); np.save(test, np.zeros((12, 16, 16, 3), np.uint8))
with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('train_images.npy', data)
    z.writestr('test_images.npy', test.getvalue())
patch_sizes(path, len(head) + 12)`,
      ),
  },
  {
    name: 'malformed label CSV',
    dataset: 'god',
    file: 'imagenet_training_label.csv',
    problem: /line 3 does not start with a GOD stimulus id/,
    breakIt: async (d) => {
      const f = join(d, 'imagenet_training_label.csv');
      const lines = (await readFile(f, 'utf8')).split('\n');
      lines[2] = 'n01440764_10026.JPEG';
      await writeFile(f, lines.join('\n'));
    },
  },
  {
    name: 'incomplete label files',
    dataset: 'god',
    file: 'imagenet_testing_label.csv',
    problem: /missing \(GOD labels need all of/,
    breakIt: (d) => rm(join(d, 'imagenet_testing_label.csv')),
  },
];

describe('bad dataset files: clear errors, nothing written', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const dir = join(root, c.name.replace(/[^a-z0-9]+/gi, '-'));
      await cp(base[c.dataset], dir, { recursive: true });
      await c.breakIt(dir);
      const out = join(root, 'out', basename(dir));
      await assert.rejects(
        prepareDataset({
          dataset: c.dataset,
          path: dir,
          subject: c.dataset === 'god' ? 'sbj_1' : 'CSI1',
          out,
        }),
        (e: Error) => {
          assert.ok(e instanceof BadInputError, `${e.name}: ${e.message}`);
          assert.ok(e.message.includes(join(dir, c.file)), `message does not name ${c.file}: ${e.message}`);
          assert.match(e.message, c.problem);
          return true;
        },
      );
      assert.equal(existsSync(out), false, 'output was created');
      const leftovers = existsSync(join(root, 'out'))
        ? (await readdir(join(root, 'out'))).filter((f) => f.startsWith(basename(dir)))
        : [];
      assert.deepEqual(leftovers, [], 'temp output left behind');
      c.also?.(dir);
    });
  }

  it('has at least 15 cases', () => {
    assert.ok(cases.length >= 15);
  });
});

describe('bad safetensors files', () => {
  const good = (): Uint8Array =>
    encodeSafetensors([
      ['w', ndarray('float32', [2, 3])],
      ['b', ndarray('float32', [3])],
    ]);
  /** Replaces the JSON header (padding kept valid by rebuilding the length prefix). */
  const withHeader = (header: object, data: Uint8Array): Uint8Array => {
    const json = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([prefix, json, data]);
  };
  const data = (): Uint8Array => good().subarray(8 + Number(Buffer.from(good()).readBigUInt64LE(0)));
  const bad: [string, () => Uint8Array, RegExp][] = [
    [
      'gap between tensors',
      () =>
        withHeader(
          {
            w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
            b: { dtype: 'F32', shape: [2], data_offsets: [28, 36] },
          },
          data(),
        ),
      /starts at 28, expected 24/,
    ],
    [
      'unsupported dtype',
      () => withHeader({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 12] } }, data().subarray(0, 12)),
      /unsupported dtype 'F16'/,
    ],
    [
      'offsets disagree with the shape',
      () => withHeader({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 36] } }, data()),
      /data_offsets \[0, 36\] but shape \[2, 2\] F32 needs 16 bytes/,
    ],
    [
      'header longer than the file',
      () => Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]),
      /truncated: header claims 65535 bytes/,
    ],
    [
      'metadata that is not str → str',
      () =>
        withHeader(
          { __metadata__: { step: 3 }, w: { dtype: 'F32', shape: [0], data_offsets: [0, 0] } },
          new Uint8Array(0),
        ),
      /__metadata__ must map strings to strings/,
    ],
    [
      'trailing bytes',
      () => Buffer.concat([good(), Buffer.from([1, 2, 3, 4])]),
      /tensors cover 36 data bytes but the file holds 40/,
    ],
  ];
  for (const [name, make, problem] of bad) {
    it(name, async () => {
      assert.throws(
        () => parseSafetensors(make(), 'ckpt.safetensors'),
        (e: Error) =>
          e instanceof BadInputError && e.message.startsWith('ckpt.safetensors: ') && problem.test(e.message),
      );
      const file = join(root, `st-${name.replace(/[^a-z]+/g, '-')}.safetensors`);
      await writeFile(file, make());
      await assert.rejects(
        readSafetensors(file),
        (e: Error) => e instanceof BadInputError && e.message.startsWith(file) && problem.test(e.message),
      );
    });
  }
});
