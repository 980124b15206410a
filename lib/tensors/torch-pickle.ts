/**
 * What torch.save's two formats share (lib/tensors/torch-zip.ts, lib/tensors/torch-legacy.ts): the
 * pickle table that turns tensors into storage views without constructing anything, the choice of the
 * entry holding the tensors, the plain-data extras beside it, and the lazily read, possibly strided view
 * of a storage laid out from a byte offset of the file.
 *
 * The pickle runs through lib/tensors/pickle.ts with the table below. Globals outside it (a training
 * script's config class, `os.system`) become opaque placeholders: refused only inside the entry the caller
 * asks for; other root entries are skipped, and any that hold plain data are handed back as extras.
 */
import type { FileHandle } from 'node:fs/promises';
import { BadInputError } from '../errors.js';
import type { OpenOptions, SourceDType, TensorRef } from '../weights/source.js';
import { readFully } from './files.js';
import { shapeSize } from './ndarray.js';
import type { NdArray } from './ndarray.js';
import { findOpaque, tag } from './pickle.js';
import type { GlobalTable, PickleMachine, PyDict, PyGlobal, PyOpaque, PyValue } from './pickle.js';
import { SOURCE_ITEMSIZE, decodeTensorBytes, swapBytes } from './source-dtypes.js';

/** A storage as named by a persistent id; several tensors may share one. */
export interface Storage {
  t: 'storage';
  dtype: SourceDType;
  /** The root storage's key: the zip member `data/<key>`, or the legacy format's storage key. */
  key: string;
  /** Legacy format only: a storage view starts this many elements into its root storage (else 0). */
  viewOffset: number;
}
/** `_rebuild_tensor_v2`'s view of a storage (element offset into the root storage, sizes, element strides). */
export interface TensorView {
  t: 'tensor';
  storage: Storage;
  offset: number;
  size: number[];
  stride: number[];
}
export type TorchNative = Storage | TensorView;
export type TorchValue = PyValue<TorchNative>;
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

function nonNegativeInt(vm: TorchVM, v: TorchValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    vm.fail(`${what} must be a non-negative int`);
  return v;
}

/** OrderedDict() (protocol 2+ pickles) or OrderedDict([[key, value], ...]) (Python 2 era torch). */
function orderedDict(vm: TorchVM, args: TorchValue): TorchValue {
  const a = vm.tuple(args, undefined, 'OrderedDict arguments');
  const map = new Map<string | number, TorchValue>();
  if (a.length > 1) vm.fail('OrderedDict takes at most one argument');
  if (a.length === 1) {
    const t = tag(a[0]!);
    if (t !== 'list' && t !== 'tuple') vm.fail('OrderedDict argument is not a list of pairs');
    for (const pair of (a[0] as { items: TorchValue[] }).items) {
      const pt = tag(pair);
      const kv = pt === 'list' || pt === 'tuple' ? (pair as { items: TorchValue[] }).items : [];
      const k = kv[0];
      if (kv.length !== 2 || (typeof k !== 'string' && !(typeof k === 'number' && Number.isInteger(k))))
        vm.fail('OrderedDict item is not a (str or int key, value) pair');
      map.set(k, kv[1]!);
    }
  }
  return { t: 'dict', map };
}

function rebuildTensor(vm: TorchVM, a: TorchValue[]): TensorView {
  const [storage, offset, size, stride] = a;
  if (tag(storage!) !== 'storage') vm.fail('_rebuild_tensor needs a storage');
  const s = storage as Storage;
  const view: TensorView = {
    t: 'tensor',
    storage: s,
    offset: s.viewOffset + nonNegativeInt(vm, offset, 'storage offset'),
    size: vm.shape(size!, 'tensor size'),
    stride: vm.shape(stride!, 'tensor stride'),
  };
  if (view.size.length !== view.stride.length) vm.fail('tensor size and stride differ in length');
  return view;
}

export const TORCH_TABLE: GlobalTable<TorchNative> = {
  globals: {
    'torch._utils._rebuild_tensor_v2': 'rebuild_tensor_v2',
    'torch._utils._rebuild_tensor': 'rebuild_tensor',
    'torch._utils._rebuild_parameter': 'rebuild_parameter',
    'torch._utils._rebuild_parameter_with_state': 'rebuild_parameter',
    'collections.OrderedDict': 'ordered_dict',
    ...Object.fromEntries(Object.keys(STORAGES).map((s) => [`torch.${s}`, `storage:${s}`])),
    // legacy files saved from a GPU may name the CUDA storage classes; torch.load maps them to the same dtypes
    ...Object.fromEntries(Object.keys(STORAGES).map((s) => [`torch.cuda.${s}`, `storage:${s}`])),
  },
  opaqueUnknown: true,

  reduce(vm: TorchVM, fn: string, args: TorchValue): TorchValue {
    switch (fn) {
      case 'ordered_dict':
        return orderedDict(vm, args);
      case 'rebuild_tensor_v2': {
        const a = vm.tuple(args, undefined, '_rebuild_tensor_v2 arguments');
        if (a.length !== 6 && a.length !== 7) vm.fail('_rebuild_tensor_v2 takes 6 or 7 arguments');
        return rebuildTensor(vm, a);
      }
      case 'rebuild_tensor': // torch < 0.4: (storage, storage_offset, size, stride)
        return rebuildTensor(vm, vm.tuple(args, 4, '_rebuild_tensor arguments'));
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

  /**
   * Zip: ('storage', class, key, location, numel). Legacy: the same plus view_metadata, None or
   * (view_key, element offset, view numel) for a view into the root storage `key`.
   */
  persistentLoad(vm: TorchVM, pid: TorchValue): TorchValue {
    const opaque = findOpaque(pid);
    if (opaque) return { t: 'opaque', global: opaque.global, offset: opaque.offset };
    const items = vm.tuple(pid, undefined, 'persistent id');
    const [kind, cls, key, , , view] = items;
    if (
      (items.length !== 5 && items.length !== 6) ||
      kind !== 'storage' ||
      typeof key !== 'string' ||
      tag(cls!) !== 'global'
    )
      vm.fail("persistent id is not ('storage', class, key, location, numel[, view])");
    const fn = (cls as PyGlobal).fn;
    if (!fn.startsWith('storage:')) vm.fail(`persistent id names ${fn}, not a storage class`);
    let viewOffset = 0;
    if (view !== undefined && view !== null) {
      const [, offset, numel] = vm.tuple(view, 3, 'storage view metadata');
      viewOffset = nonNegativeInt(vm, offset, 'storage view offset');
      nonNegativeInt(vm, numel, 'storage view size');
    }
    return { t: 'storage', dtype: STORAGES[fn.slice('storage:'.length)]!, key, viewOffset };
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

/** The tensors of the selected entry (by name, in pickle order) and the plain data beside it. */
export interface TorchEntry {
  tensors: [name: string, view: TensorView][];
  extras: Record<string, unknown>;
}

/**
 * Picks the dict of tensors out of the unpickled root (`opts.entry`, or the root itself), refusing an
 * opaque global inside it; `source` names the file and pickle in errors.
 */
export function torchEntry(root: TorchValue, path: string, source: string, opts: OpenOptions): TorchEntry {
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
  const tensors: [string, TensorView][] = [];
  for (const [k, v] of (selected as PyDict<TorchNative>).map)
    if (tag(v) === 'tensor') tensors.push([String(k), v as TensorView]);
  const extras: Record<string, unknown> = {};
  for (const [k, v] of rootDict ?? []) {
    if (k === opts.entry || tag(v) === 'tensor') continue;
    const p = plainData(v);
    if (p !== undefined) extras[String(k)] = p;
  }
  return { tensors, extras };
}

/** Storage bytes read per window when gathering a strided tensor. */
const WINDOW_BYTES = 16 * 2 ** 20;

/** A lazily read tensor view of a storage whose element 0 lies at byte `start` of the file. */
export class TorchTensor implements TensorRef {
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

/** Bytes from the start of the root storage to the end of the view's last element (0 when empty). */
export function extentBytes(v: TensorView, itemsize: number): number {
  if (v.size.some((d) => d === 0)) return 0;
  let last = v.offset;
  for (let d = 0; d < v.size.length; d++) last += (v.size[d]! - 1) * v.stride[d]!;
  return (last + 1) * itemsize;
}
