/**
 * torch.save's legacy format (torch < 1.6, or `_use_new_zipfile_serialization=False`), in which upstream
 * files such as lpips's `weights/v0.1/alex.pth` and torchvision's 2017 AlexNet still ship: pickles back
 * to back (the magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the
 * object, whose storages are persistent ids ('storage', class, key, location, numel, view_metadata), and
 * the list of storage keys), then for each key in that order an 8-byte little-endian element count
 * followed by the storage's bytes.
 *
 * Storage bytes are little-endian whatever sys_info says: torch's writer (THPStorage_writeFileRaw)
 * converts on big-endian hosts and torch.load never consults sys_info. Opening reads the pickles and then
 * walks the counts to record where each storage starts; a tensor's bytes are read only by its `read()`.
 * The object pickle runs through the torch table of lib/tensors/torch-pickle.ts (shared with the zip
 * reader), so nothing in the file is executed and globals outside the table are refused only inside the
 * entry the caller asks for. The older tar-based format (torch < 0.1.10) is not read.
 */
import type { FileHandle } from 'node:fs/promises';
import { BadInputError } from '../errors.js';
import type { CheckpointSource, OpenOptions, SourceDType, TensorRef } from '../weights/source.js';
import { openForReading, readFully } from './files.js';
import { PickleMachine, tag } from './pickle.js';
import type { GlobalTable, PyList, PyValue } from './pickle.js';
import { SOURCE_ITEMSIZE } from './source-dtypes.js';
import { TORCH_TABLE, TorchTensor, extentBytes, torchEntry } from './torch-pickle.js';
import type { Storage, TorchNative, TorchValue } from './torch-pickle.js';

/** 0x1950a86a20f9469cfc6c as LONG1 writes it: little-endian, 10 bytes. */
const MAGIC = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION = 1001;
/** The first read of the file's pickles; grown fourfold while a pickle runs past it. */
const FIRST_READ = 2 ** 20;

/**
 * Where the magic-number pickle ends when `head` starts with one (torch's default protocol 2 writes
 * `80 02 8a 0a <magic> 2e`; protocols 4-5 may put a FRAME before the LONG1), else undefined.
 */
export function legacyMagicEnd(head: Uint8Array): number | undefined {
  const proto = head[1];
  if (head[0] !== 0x80 || proto === undefined || proto < 2 || proto > 5) return undefined;
  let p = 2;
  if (head[p] === 0x95) p += 9;
  if (head[p] !== 0x8a || head[p + 1] !== MAGIC.length) return undefined;
  for (let i = 0; i < MAGIC.length; i++) if (head[p + 2 + i] !== MAGIC[i]) return undefined;
  if (head[p + 2 + MAGIC.length] !== 0x2e) return undefined;
  return p + 3 + MAGIC.length;
}

/** The version, sys_info and key-list pickles hold only plain data: no global is allowed in them. */
const DATA_TABLE: GlobalTable<TorchNative> = {
  globals: {},
  opaqueUnknown: false,
  reduce: (vm) => vm.fail('REDUCE in a pickle of plain data'),
  build: (vm) => vm.fail('BUILD in a pickle of plain data'),
};

/** Thrown while parsing a prefix of the file when a pickle runs past it. */
const NEED_MORE = Symbol('need more');

interface Head {
  root: TorchValue;
  objectSource: string;
  /** Storage keys in data-section order. */
  keys: string[];
  /** Each root storage's dtype, as its first persistent id names it. */
  dtypes: Map<string, SourceDType>;
  dataStart: number;
}

/** Runs the pickles in `buf` (the first bytes of a `fileSize`-byte file). */
function parseHead(buf: Uint8Array, fileSize: number, path: string): Head {
  let pos = legacyMagicEnd(buf);
  if (pos === undefined) throw new BadInputError(`${path}: no torch.save legacy magic number`);
  const run = (what: string, table: GlobalTable<TorchNative>): PyValue<TorchNative> => {
    const vm = new PickleMachine<TorchNative>(buf, `${path}: ${what}`, table);
    try {
      const { value, end } = vm.runFrom(pos!);
      pos = end;
      return value;
    } catch (e) {
      if (vm.ranOut && buf.length < fileSize) throw NEED_MORE;
      throw e;
    }
  };
  const version = run('protocol version pickle', DATA_TABLE);
  if (version !== PROTOCOL_VERSION)
    throw new BadInputError(`${path}: legacy torch.save protocol version ${String(version)} is not 1001`);
  if (tag(run('sys_info pickle', DATA_TABLE)) !== 'dict')
    throw new BadInputError(`${path}: the legacy sys_info pickle is not a dict`);

  const dtypes = new Map<string, SourceDType>();
  const objectSource = `${path}: object pickle`;
  const root = run('object pickle', {
    ...TORCH_TABLE,
    persistentLoad(vm, pid) {
      const v = TORCH_TABLE.persistentLoad!(vm, pid);
      if (tag(v) === 'storage') {
        const s = v as Storage;
        if (!dtypes.has(s.key)) dtypes.set(s.key, s.dtype);
      }
      return v;
    },
  });
  const list = run('storage key pickle', DATA_TABLE);
  const keys = tag(list) === 'list' ? (list as PyList<TorchNative>).items : undefined;
  if (!keys || !keys.every((k) => typeof k === 'string'))
    throw new BadInputError(`${path}: the legacy storage key pickle is not a list of str`);
  return { root, objectSource, keys: keys as string[], dtypes, dataStart: pos };
}

/** Reads the pickles, reading more of the file while one runs past what has been read. */
async function readHead(fh: FileHandle, fileSize: number, path: string): Promise<Head> {
  for (let len = Math.min(fileSize, FIRST_READ); ; len = Math.min(fileSize, len * 4)) {
    const buf = new Uint8Array(len);
    await readFully(fh, buf, 0);
    try {
      return parseHead(buf, fileSize, path);
    } catch (e) {
      if (e !== NEED_MORE) throw e;
    }
  }
}

interface Located {
  /** File offset of the storage's first byte. */
  start: number;
  /** Bytes its element count promises. */
  nbytes: number;
}

/**
 * Walks the data section's counts: where each storage's bytes start. Stops at the end of the file (the
 * storages not reached are left out, and any tensor on them is refused as truncated).
 */
async function locateStorages(fh: FileHandle, head: Head, path: string): Promise<Map<string, Located>> {
  const located = new Map<string, Located>();
  const count = new Uint8Array(8);
  const dv = new DataView(count.buffer);
  let pos = head.dataStart;
  for (const key of head.keys) {
    const dtype = head.dtypes.get(key);
    if (dtype === undefined)
      throw new BadInputError(`${path}: storage '${key}' of the storage list is not in the object pickle`);
    if ((await readFully(fh, count, pos)) !== 8) break;
    const numel = dv.getBigUint64(0, true);
    const nbytes = numel * BigInt(SOURCE_ITEMSIZE[dtype]);
    if (nbytes > BigInt(Number.MAX_SAFE_INTEGER))
      throw new BadInputError(`${path}: storage '${key}' claims ${numel} elements`);
    located.set(key, { start: pos + 8, nbytes: Number(nbytes) });
    pos += 8 + Number(nbytes);
  }
  return located;
}

/** Opens a legacy torch.save checkpoint; see OpenOptions.entry for which object supplies the tensors. */
export async function openTorchLegacy(path: string, opts: OpenOptions = {}): Promise<CheckpointSource> {
  const fh = await openForReading(path);
  try {
    const fileSize = (await fh.stat()).size;
    const head = await readHead(fh, fileSize, path);
    const { tensors: views, extras } = torchEntry(head.root, path, head.objectSource, opts);
    const located = await locateStorages(fh, head, path);
    const listed = new Set(head.keys);
    const tensors = new Map<string, TensorRef>();
    for (const [name, view] of views) {
      const what = `${path}: tensor '${name}'`;
      const key = view.storage.key;
      if (!listed.has(key)) throw new BadInputError(`${what}: storage '${key}' is not in the storage list`);
      const at = located.get(key);
      if (!at)
        throw new BadInputError(
          `${what}: truncated data section (the file ends at byte ${fileSize}, before storage '${key}')`,
        );
      const need = extentBytes(view, SOURCE_ITEMSIZE[view.storage.dtype]);
      if (need > at.nbytes)
        throw new BadInputError(
          `${what}: the tensor reaches byte ${need} of storage '${key}', which holds ${at.nbytes} bytes`,
        );
      if (at.start + need > fileSize)
        throw new BadInputError(
          `${what}: truncated storage '${key}' (the file ends at byte ${fileSize}; the tensor reaches byte ${at.start + need})`,
        );
      tensors.set(name, new TorchTensor(name, view, fh, at.start, false, what));
    }
    return { path, format: 'torch-legacy', tensors, extras, close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
