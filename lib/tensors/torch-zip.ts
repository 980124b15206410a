/**
 * torch.save checkpoints (the zip format since torch 1.6): `<archive>/data.pkl` pickles the object, each
 * tensor's storage is a member `<archive>/data/<key>` referenced through a persistent id, and
 * `<archive>/byteorder` says how storages are laid out. yauzl reads only the central directory (zip64
 * included); storages are read lazily and uncompressed (torch never compresses them; a compressed member
 * is refused) straight from the file at the offset its local header gives, so reading one tensor holds
 * only that tensor plus a bounded window in memory.
 *
 * The pickle runs through lib/tensors/pickle.ts with the torch table below. Globals outside it (a training
 * script's config class, `os.system`) become opaque placeholders: refused only inside the entry the caller
 * asks for; other root entries are skipped, and any that hold plain data are handed back as extras.
 */
import type { FileHandle } from 'node:fs/promises';
import yauzl from 'yauzl';
import { BadInputError } from '../errors.js';
import type { CheckpointSource, OpenOptions, SourceDType, TensorRef } from '../weights/source.js';
import { openForReading, readFully } from './files.js';
import { shapeSize } from './ndarray.js';
import type { NdArray } from './ndarray.js';
import { PickleMachine, findOpaque, tag } from './pickle.js';
import type { GlobalTable, PyDict, PyGlobal, PyOpaque, PyValue } from './pickle.js';
import { SOURCE_ITEMSIZE, decodeTensorBytes, swapBytes } from './source-dtypes.js';

/** A storage as named by a persistent id; several tensors may share one. */
interface Storage {
  t: 'storage';
  dtype: SourceDType;
  key: string;
}
/** `_rebuild_tensor_v2`'s view of a storage (element offset, sizes, element strides). */
interface TensorView {
  t: 'tensor';
  storage: Storage;
  offset: number;
  size: number[];
  stride: number[];
}
type TorchNative = Storage | TensorView;
type TorchValue = PyValue<TorchNative>;
type TorchVM = PickleMachine<TorchNative>;

const STORAGES: Record<string, SourceDType> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

function tensorOf(vm: TorchVM, v: TorchValue, what: string): TensorView {
  if (tag(v) !== 'tensor') vm.fail(`${what} is not a tensor`);
  return v as TensorView;
}

const TORCH_TABLE: GlobalTable<TorchNative> = {
  globals: {
    'torch._utils._rebuild_tensor_v2': 'rebuild_tensor',
    'torch._utils._rebuild_parameter': 'rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state': 'rebuild_parameter',
    'collections.OrderedDict': 'ordered_dict',
    ...Object.fromEntries(Object.keys(STORAGES).map((s) => [`torch.${s}`, `storage:${s}`])),
  },
  opaqueUnknown: true,

  reduce(vm: TorchVM, fn: string, args: TorchValue): TorchValue {
    switch (fn) {
      case 'ordered_dict':
        vm.tuple(args, 0, 'OrderedDict arguments');
        return { t: 'dict', map: new Map() };
      case 'rebuild_tensor': {
        const a = vm.tuple(args, undefined, '_rebuild_tensor_v2 arguments');
        if (a.length !== 6 && a.length !== 7) vm.fail('_rebuild_tensor_v2 takes 6 or 7 arguments');
        const [storage, offset, size, stride] = a;
        if (tag(storage!) !== 'storage') vm.fail('_rebuild_tensor_v2 needs a storage');
        if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
          vm.fail('storage offset must be a non-negative int');
        const view: TensorView = {
          t: 'tensor',
          storage: storage as Storage,
          offset,
          size: vm.shape(size!, 'tensor size'),
          stride: vm.shape(stride!, 'tensor stride'),
        };
        if (view.size.length !== view.stride.length) vm.fail('tensor size and stride differ in length');
        return view;
      }
      case 'rebuild_parameter': {
        const a = vm.tuple(args, undefined, '_rebuild_parameter arguments');
        if (a.length !== 3 && a.length !== 4) vm.fail('_rebuild_parameter takes 3 or 4 arguments');
        return tensorOf(vm, a[0]!, 'parameter data');
      }
      default:
        vm.fail(`torch.${fn.slice('storage:'.length)} is only allowed in a persistent id`);
    }
  },

  build(vm: TorchVM, obj: TorchValue, _state: TorchValue): void {
    // An OrderedDict's state is its `_metadata` (module versions), which no reader here needs.
    if (tag(obj) !== 'dict') vm.fail('BUILD on an unexpected object');
  },

  persistentLoad(vm: TorchVM, pid: TorchValue): TorchValue {
    const opaque = findOpaque(pid);
    if (opaque) return { t: 'opaque', global: opaque.global, offset: opaque.offset };
    const [kind, cls, key] = vm.tuple(pid, 5, 'persistent id');
    if (kind !== 'storage' || typeof key !== 'string' || tag(cls!) !== 'global')
      vm.fail("persistent id is not ('storage', class, key, location, numel)");
    const fn = (cls as PyGlobal).fn;
    if (!fn.startsWith('storage:')) vm.fail(`persistent id names ${fn}, not a storage class`);
    return { t: 'storage', dtype: STORAGES[fn.slice('storage:'.length)]!, key };
  },
};

/** Values that read as data without constructing anything: str/int/float/bool/None, lists, str-keyed dicts. */
function plainData(v: TorchValue): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return v;
  switch (tag(v)) {
    case 'tuple':
    case 'list': {
      const items = (v as { items: TorchValue[] }).items.map(plainData);
      return items.includes(undefined) ? undefined : items;
    }
    case 'dict': {
      const out: Record<string, unknown> = {};
      for (const [k, item] of (v as PyDict<TorchNative>).map) {
        const p = plainData(item);
        if (typeof k !== 'string' || p === undefined) return undefined;
        out[k] = p;
      }
      return out;
    }
    case 'opaque': {
      // An object's attributes: BUILD state is a dict, or (dict | None, slots dict | None).
      const state = (v as PyOpaque<TorchNative>).state;
      if (state === undefined) return undefined;
      const parts = tag(state) === 'tuple' ? (state as { items: TorchValue[] }).items : [state];
      if (parts.length > 2 || !parts.every((p) => p === null || tag(p) === 'dict')) return undefined;
      const merged = parts.map(plainData);
      if (merged.includes(undefined)) return undefined;
      return Object.assign({}, ...merged.filter((p) => p !== null)) as Record<string, unknown>;
    }
    default:
      return undefined;
  }
}

interface Member {
  name: string;
  compressionMethod: number;
  size: number;
  localHeader: number;
}

/** Members by name; names that could escape the archive are refused. */
async function listMembers(path: string): Promise<Map<string, Member>> {
  let zip: yauzl.ZipFile;
  try {
    // Names are checked here (decodeStrings off) so the error can say which member is wrong.
    zip = await yauzl.openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: false });
  } catch (e) {
    throw new BadInputError(`${path}: not a readable torch.save zip archive (${(e as Error).message})`);
  }
  try {
    const members = new Map<string, Member>();
    for await (const entry of zip.eachEntry()) {
      const name = Buffer.from(entry.fileNameRaw).toString('utf8');
      if (
        name.startsWith('/') ||
        /^[a-zA-Z]:/.test(name) ||
        name.includes('\\') ||
        name.split('/').includes('..')
      )
        throw new BadInputError(
          `${path}: zip member '${name}' is not a plain relative path (absolute or '..')`,
        );
      if (entry.isEncrypted()) throw new BadInputError(`${path}: zip member '${name}' is encrypted`);
      members.set(name, {
        name,
        compressionMethod: entry.compressionMethod,
        size: entry.uncompressedSize,
        localHeader: entry.relativeOffsetOfLocalHeader,
      });
    }
    return members;
  } catch (e) {
    if (e instanceof BadInputError) throw e;
    throw new BadInputError(`${path}: corrupt zip directory (${(e as Error).message})`);
  } finally {
    zip.close();
  }
}

/** Where a stored member's bytes start: after its local header's name and extra field. */
async function dataOffset(fh: FileHandle, path: string, m: Member): Promise<number> {
  if (m.compressionMethod !== 0)
    throw new BadInputError(
      `${path}: zip member '${m.name}' is compressed (method ${m.compressionMethod}); torch.save stores members uncompressed`,
    );
  const header = new Uint8Array(30);
  const got = await readFully(fh, header, m.localHeader);
  const dv = new DataView(header.buffer);
  if (got !== 30 || dv.getUint32(0, true) !== 0x04034b50)
    throw new BadInputError(`${path}: zip member '${m.name}' has no local file header`);
  return m.localHeader + 30 + dv.getUint16(26, true) + dv.getUint16(28, true);
}

async function readMember(fh: FileHandle, path: string, m: Member): Promise<Uint8Array> {
  const out = new Uint8Array(m.size);
  if ((await readFully(fh, out, await dataOffset(fh, path, m))) !== m.size)
    throw new BadInputError(`${path}: zip member '${m.name}' is truncated`);
  return out;
}

/** Storage bytes read per window when gathering a strided tensor. */
const WINDOW_BYTES = 16 * 2 ** 20;

/** A lazily read tensor view of a storage member. */
class TorchTensor implements TensorRef {
  readonly dtype: SourceDType;
  readonly shape: readonly number[];

  constructor(
    readonly name: string,
    private readonly view: TensorView,
    private readonly fh: FileHandle,
    private readonly start: number,
    private readonly bigEndian: boolean,
    private readonly where: string,
  ) {
    this.dtype = view.storage.dtype;
    this.shape = view.size;
  }

  async read(): Promise<NdArray> {
    const { offset, size, stride } = this.view;
    const itemsize = SOURCE_ITEMSIZE[this.dtype];
    const n = shapeSize(size);
    const out = new Uint8Array(n * itemsize);
    let contiguous = true;
    for (let d = size.length - 1, expect = 1; d >= 0; expect *= size[d]!, d--)
      if (size[d]! > 1 && stride[d] !== expect) contiguous = false;
    if (n > 0 && contiguous) {
      if ((await readFully(this.fh, out, this.start + offset * itemsize)) !== out.length)
        throw new BadInputError(`${this.where}: file truncated inside its storage`);
    } else if (n > 0) {
      await this.gather(out, itemsize);
    }
    if (this.bigEndian) swapBytes(out, itemsize);
    return decodeTensorBytes(this.dtype, size, out, this.where);
  }

  /**
   * Copies a strided view element by element, visiting dimensions in decreasing stride so the storage is
   * read forward through one window at a time (a new window starts wherever the next element lies).
   */
  private async gather(out: Uint8Array, itemsize: number): Promise<void> {
    const { offset, size, stride } = this.view;
    const rank = size.length;
    const cstride = new Array<number>(rank);
    for (let d = rank - 1, s = 1; d >= 0; s *= size[d]!, d--) cstride[d] = s;
    const order = [...size.keys()].sort((a, b) => stride[b]! - stride[a]!);
    const idx = new Array<number>(rank).fill(0);
    const window = new Uint8Array(Math.min(WINDOW_BYTES, extentBytes(this.view, itemsize)));
    let winStart = -1;
    let winEnd = -1;
    const total = out.length / itemsize;
    for (let i = 0; i < total; i++) {
      let s = offset;
      let o = 0;
      for (let d = 0; d < rank; d++) {
        s += idx[d]! * stride[d]!;
        o += idx[d]! * cstride[d]!;
      }
      const at = s * itemsize;
      if (at < winStart || at + itemsize > winEnd) {
        winStart = at;
        winEnd = at + (await readFully(this.fh, window, this.start + at));
        if (at + itemsize > winEnd)
          throw new BadInputError(`${this.where}: file truncated inside its storage`);
      }
      for (let k = 0; k < itemsize; k++) out[o * itemsize + k] = window[at - winStart + k]!;
      for (let j = rank - 1; j >= 0; j--) {
        const d = order[j]!;
        if (++idx[d]! < size[d]!) break;
        idx[d] = 0;
      }
    }
  }
}

/** Bytes from the start of the storage to the end of the view's last element (0 when empty). */
function extentBytes(v: TensorView, itemsize: number): number {
  if (v.size.some((d) => d === 0)) return 0;
  let last = v.offset;
  for (let d = 0; d < v.size.length; d++) last += (v.size[d]! - 1) * v.stride[d]!;
  return (last + 1) * itemsize;
}

/** Opens a torch.save zip checkpoint; see OpenOptions.entry for which object supplies the tensors. */
export async function openTorchZip(path: string, opts: OpenOptions = {}): Promise<CheckpointSource> {
  const members = await listMembers(path);
  const pkls = [...members.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new BadInputError(
      `${path}: not a torch.save archive (expected one <name>/data.pkl, found ${pkls.length})`,
    );
  const prefix = pkls[0]!.slice(0, -'data.pkl'.length);
  const fh = await openForReading(path);
  try {
    let bigEndian = false;
    const order = members.get(`${prefix}byteorder`);
    if (order) {
      const text = new TextDecoder().decode(await readMember(fh, path, order)).trim();
      if (text !== 'little' && text !== 'big')
        throw new BadInputError(`${path}: unknown byteorder '${text}'`);
      bigEndian = text === 'big';
    }
    const source = `${path}: member '${pkls[0]}'`;
    const root = new PickleMachine(
      await readMember(fh, path, members.get(pkls[0]!)!),
      source,
      TORCH_TABLE,
    ).run();
    const rootDict = tag(root) === 'dict' ? (root as PyDict<TorchNative>).map : undefined;
    let selected: TorchValue = root;
    if (opts.entry !== undefined) {
      if (!rootDict || !rootDict.has(opts.entry)) {
        const keys = rootDict ? [...rootDict.keys()].join(', ') : 'none: the root is not a dict';
        throw new BadInputError(`${path}: no entry '${opts.entry}' in the checkpoint (root keys: ${keys})`);
      }
      selected = rootDict.get(opts.entry)!;
    }
    const where = opts.entry === undefined ? 'the root object' : `entry '${opts.entry}'`;
    const opaque = findOpaque(selected);
    if (opaque)
      throw new BadInputError(
        `${source}: pickle rejected at byte ${opaque.offset}: disallowed global ${opaque.global} in ${where}`,
      );
    if (tag(selected) !== 'dict') throw new BadInputError(`${path}: ${where} is not a dict of tensors`);
    const tensors = new Map<string, TensorRef>();
    const starts = new Map<string, number>();
    for (const [k, v] of (selected as PyDict<TorchNative>).map) {
      if (tag(v) !== 'tensor') continue;
      const name = String(k);
      const view = v as TensorView;
      const what = `${path}: tensor '${name}'`;
      const member = members.get(`${prefix}data/${view.storage.key}`);
      if (!member)
        throw new BadInputError(`${what}: storage member '${prefix}data/${view.storage.key}' is missing`);
      const need = extentBytes(view, SOURCE_ITEMSIZE[view.storage.dtype]);
      if (need > member.size)
        throw new BadInputError(
          `${what}: truncated storage '${member.name}' (${member.size} bytes; the tensor reaches byte ${need})`,
        );
      let start = starts.get(member.name);
      if (start === undefined) {
        start = await dataOffset(fh, path, member);
        starts.set(member.name, start);
      }
      tensors.set(name, new TorchTensor(name, view, fh, start, bigEndian, what));
    }
    const extras: Record<string, unknown> = {};
    for (const [k, v] of rootDict ?? []) {
      if (k === opts.entry || tag(v) === 'tensor') continue;
      const p = plainData(v);
      if (p !== undefined) extras[String(k)] = p;
    }
    return { path, format: 'torch-zip', tensors, extras, close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
