/**
 * Pickles without unpickling. Pickles can run arbitrary code, so this is a small stack machine that knows
 * a fixed set of opcodes and resolves GLOBALs only through a table: each table gives its permitted globals
 * a fixed meaning here and nothing is ever imported or called. Two tables use it:
 *
 * - BOLD5000's `img_dict.npy` (`np.save(path, {name: uint8 image})`: an .npy of dtype '|O' whose data is
 *   the pickle of a 0-d object array holding the dict): the five numpy globals below (protocols 2-5); any
 *   other global, opcode, dtype or shape of data is rejected with the byte offset.
 * - torch.save's pickles (lib/tensors/torch-pickle.ts: the zip format's data.pkl and the legacy format's
 *   consecutive pickles), where other globals (a training script's config class, `builtins.set`) may sit
 *   beside the weights: they become opaque placeholders, never constructed, and are refused only when the
 *   caller needs the value holding them (see `findOpaque`). Python 2 str (SHORT_BINSTRING, BINSTRING, as
 *   in lpips's 2018 weights) reads as UTF-8 text, as torch.load's default encoding does.
 *
 * The writer emits the protocol-3 layout numpy 1.x wrote for an image dict, so synthetic files have the
 * real format; numpy reads them back (see test/tensors.test.ts).
 */
import { readFile } from 'node:fs/promises';
import { BadInputError } from '../errors.js';
import { writePiecesAtomic } from './files.js';
import { shapeSize } from './ndarray.js';
import type { NdArray } from './ndarray.js';
import { NpyDecoder, npyPreludeLength, parseNpyHeader } from './npy.js';

/** A table's own values (numpy arrays, torch storages): objects tagged with a `t` no builtin uses. */
export interface Native {
  t: string;
}
export interface PyTuple<N> {
  t: 'tuple';
  items: PyValue<N>[];
}
export interface PyList<N> {
  t: 'list';
  items: PyValue<N>[];
}
export interface PyDict<N> {
  t: 'dict';
  map: Map<string | number, PyValue<N>>;
}
/** A permitted global: `fn` is the table's name for it. */
export interface PyGlobal {
  t: 'global';
  fn: string;
}
/** A global outside the table, or anything made from one: remembered by name and byte offset only. */
export interface PyOpaque<N> {
  t: 'opaque';
  global: string;
  offset: number;
  /** What BUILD would have set on the object (kept as data, never applied). */
  state?: PyValue<N>;
}
export type PyValue<N> =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | PyTuple<N>
  | PyList<N>
  | PyDict<N>
  | PyGlobal
  | PyOpaque<N>
  | N;

/** The tag of a tagged value (tuple, dict, global, a table's own kinds), or undefined for plain ones. */
export function tag<N extends Native>(v: PyValue<N>): string | undefined {
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array) ? v.t : undefined;
}

/** The first opaque placeholder inside `v` (depth-first), if any. */
export function findOpaque<N extends Native>(
  v: PyValue<N>,
  seen = new Set<object>(),
): PyOpaque<N> | undefined {
  const t = tag(v);
  if (t === undefined || seen.has(v as object)) return undefined;
  seen.add(v as object);
  if (t === 'opaque') return v as PyOpaque<N>;
  if (t === 'tuple' || t === 'list') {
    for (const item of (v as PyTuple<N>).items) {
      const o = findOpaque(item, seen);
      if (o) return o;
    }
  }
  if (t === 'dict') {
    for (const item of (v as PyDict<N>).map.values()) {
      const o = findOpaque(item, seen);
      if (o) return o;
    }
  }
  return undefined;
}

/** What a table decides; `vm` gives its error helpers (which name the file and byte offset). */
export interface GlobalTable<N extends Native> {
  /** 'module.name' → the table's name for the callable. */
  readonly globals: Readonly<Record<string, string>>;
  /** true: other globals become opaque placeholders; false: they are refused at once. */
  readonly opaqueUnknown: boolean;
  /** Calls a permitted global (REDUCE); args hold no opaque value. */
  reduce(vm: PickleMachine<N>, fn: string, args: PyValue<N>): PyValue<N>;
  /** BUILD on a value that is not opaque. */
  build(vm: PickleMachine<N>, obj: PyValue<N>, state: PyValue<N>): void;
  /** BINPERSID; without it the opcode is refused. */
  persistentLoad?(vm: PickleMachine<N>, pid: PyValue<N>): PyValue<N>;
}

const MARK = Symbol('mark');
type StackItem<N> = PyValue<N> | typeof MARK;

/** Names of the opcodes refused most often, for readable errors. */
const OPCODE_NAMES: Record<number, string> = {
  0x30: 'POP',
  0x31: 'POP_MARK',
  0x32: 'DUP',
  0x46: 'FLOAT',
  0x49: 'INT',
  0x4c: 'LONG',
  0x50: 'PERSID',
  0x51: 'BINPERSID',
  0x53: 'STRING',
  0x56: 'UNICODE',
  0x64: 'DICT',
  0x67: 'GET',
  0x69: 'INST',
  0x6c: 'LIST',
  0x6f: 'OBJ',
  0x70: 'PUT',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x8b: 'LONG4',
  0x8d: 'BINUNICODE8',
  0x8f: 'FROZENSET',
  0x90: 'EMPTY_SET',
  0x91: 'ADDITEMS',
  0x92: 'NEWOBJ_EX',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

export class PickleMachine<N extends Native> {
  private pos = 0;
  private opStart = 0;
  private readonly stack: StackItem<N>[] = [];
  private readonly memo = new Map<number, PyValue<N>>();
  private readonly dv: DataView;
  /** Whether STOP may come before the end of the buffer (several pickles in one file). */
  private stopEarly = false;
  /**
   * Whether the last failure was the buffer ending inside the pickle (a reader holding only the start of
   * a file can then read more and run again).
   */
  ranOut = false;

  constructor(
    private readonly buf: Uint8Array,
    /** Names the file (and member) in errors. */
    readonly source: string,
    private readonly table: GlobalTable<N>,
  ) {
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Refuses the pickle at the current opcode. */
  fail(problem: string): never {
    throw new BadInputError(`${this.source}: pickle rejected at byte ${this.opStart}: ${problem}`);
  }

  private take(n: number): Uint8Array {
    if (n > this.buf.length - this.pos) {
      this.ranOut = true;
      this.fail('truncated pickle');
    }
    const out = this.buf.subarray(this.pos, this.pos + n); // a view: image bytes are never copied
    this.pos += n;
    return out;
  }

  private at(n: number): number {
    return this.take(n).byteOffset - this.buf.byteOffset;
  }
  private u8(): number {
    return this.take(1)[0]!;
  }
  private u16(): number {
    return this.dv.getUint16(this.at(2), true);
  }
  private u32(): number {
    return this.dv.getUint32(this.at(4), true);
  }
  private i32(): number {
    return this.dv.getInt32(this.at(4), true);
  }
  private u64(): number {
    const v = this.dv.getBigUint64(this.at(8), true);
    if (v > BigInt(this.buf.length)) {
      this.ranOut = true;
      this.fail('length field exceeds the file');
    }
    return Number(v);
  }

  /** LONG1: a little-endian two's-complement integer of up to 255 bytes; only safe integers are kept. */
  private long1(): number {
    const bytes = this.take(this.u8());
    let v = 0n;
    for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
    if (bytes.length > 0 && bytes[bytes.length - 1]! >= 0x80) v -= 1n << BigInt(8 * bytes.length);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      this.fail(`integer ${v} is beyond 2^53`);
    return Number(v);
  }

  private utf8(bytes: Uint8Array): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      this.fail('string is not valid UTF-8');
    }
  }

  private line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0 && this.buf.length - this.pos <= 256) this.ranOut = true;
    if (end < 0 || end - this.pos > 256) this.fail('malformed GLOBAL');
    const s = new TextDecoder('latin1').decode(this.buf.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private push(v: StackItem<N>): void {
    this.stack.push(v);
  }

  private pop(): PyValue<N> {
    const v = this.stack.pop();
    if (v === undefined) this.fail('stack underflow');
    if (v === MARK) this.fail('unexpected MARK');
    return v;
  }

  private top(): PyValue<N> {
    const v = this.stack[this.stack.length - 1];
    if (v === undefined || v === MARK) this.fail('nothing to memoize');
    return v;
  }

  private popToMark(): PyValue<N>[] {
    const i = this.stack.lastIndexOf(MARK);
    if (i < 0) this.fail('no MARK on the stack');
    const items = this.stack.splice(i) as PyValue<N>[];
    items.shift();
    return items;
  }

  private global(module: string, name: string): PyGlobal | PyOpaque<N> {
    const full = `${module}.${name}`;
    const fn = this.table.globals[full];
    if (fn) return { t: 'global', fn };
    if (!this.table.opaqueUnknown) this.fail(`disallowed global ${full}`);
    return { t: 'opaque', global: full, offset: this.opStart };
  }

  private get(index: number): PyValue<N> {
    if (!this.memo.has(index)) this.fail(`memo index ${index} not set`);
    return this.memo.get(index)!;
  }

  /**
   * Runs the pickle that starts at byte `start` and may be followed by more bytes (torch's legacy format
   * writes several pickles back to back); returns its value and the offset just past its STOP. Error
   * offsets count from the start of the buffer.
   */
  runFrom(start: number): { value: PyValue<N>; end: number } {
    this.pos = start;
    this.stopEarly = true;
    const value = this.run();
    return { value, end: this.pos };
  }

  /** Runs the whole buffer as one pickle. */
  run(): PyValue<N> {
    for (;;) {
      this.opStart = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: {
          const proto = this.u8();
          if (proto < 2 || proto > 5) this.fail(`pickle protocol ${proto} is not supported (2-5)`);
          break;
        }
        case 0x95: // FRAME: only a read-ahead hint
          this.u64();
          break;
        case 0x2e: {
          const result = this.pop();
          if (this.stack.length !== 0) this.fail('items left on the stack at STOP');
          if (!this.stopEarly && this.pos !== this.buf.length)
            this.fail(`${this.buf.length - this.pos} trailing bytes after STOP`);
          return result;
        }
        case 0x28:
          this.push(MARK);
          break;
        case 0x4e:
          this.push(null);
          break;
        case 0x88:
          this.push(true);
          break;
        case 0x89:
          this.push(false);
          break;
        case 0x4a:
          this.push(this.i32());
          break;
        case 0x4b:
          this.push(this.u8());
          break;
        case 0x4d:
          this.push(this.u16());
          break;
        case 0x8a:
          this.push(this.long1());
          break;
        case 0x47: // BINFLOAT: big-endian float64
          this.push(this.dv.getFloat64(this.at(8), false));
          break;
        case 0x8c:
          this.push(this.utf8(this.take(this.u8())));
          break;
        case 0x58:
          this.push(this.utf8(this.take(this.u32())));
          break;
        case 0x43:
          this.push(this.take(this.u8()));
          break;
        case 0x42:
          this.push(this.take(this.u32()));
          break;
        case 0x55: // SHORT_BINSTRING: a Python 2 str
          this.push(this.utf8(this.take(this.u8())));
          break;
        case 0x54: {
          // BINSTRING: a Python 2 str with a signed 4-byte length
          const n = this.i32();
          if (n < 0) this.fail('negative BINSTRING length');
          this.push(this.utf8(this.take(n)));
          break;
        }
        case 0x8e:
        case 0x96: // BINBYTES8, BYTEARRAY8 (protocol 5 in-band buffers): both just bytes here
          this.push(this.take(this.u64()));
          break;
        case 0x29:
          this.push({ t: 'tuple', items: [] });
          break;
        case 0x74:
          this.push({ t: 'tuple', items: this.popToMark() });
          break;
        case 0x85:
        case 0x86:
        case 0x87: {
          const n = op - 0x84;
          const items: PyValue<N>[] = [];
          for (let i = 0; i < n; i++) items.unshift(this.pop());
          this.push({ t: 'tuple', items });
          break;
        }
        case 0x5d:
          this.push({ t: 'list', items: [] });
          break;
        case 0x61: {
          const v = this.pop();
          this.list()?.items.push(v);
          break;
        }
        case 0x65: {
          const items = this.popToMark();
          this.list()?.items.push(...items);
          break;
        }
        case 0x7d:
          this.push({ t: 'dict', map: new Map() });
          break;
        case 0x73: {
          const v = this.pop();
          const k = this.pop();
          this.setItem(k, v);
          break;
        }
        case 0x75: {
          const items = this.popToMark();
          if (items.length % 2 !== 0) this.fail('SETITEMS with an odd number of items');
          for (let i = 0; i < items.length; i += 2) this.setItem(items[i]!, items[i + 1]!);
          break;
        }
        case 0x63: {
          const module = this.line();
          this.push(this.global(module, this.line()));
          break;
        }
        case 0x93: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string')
            this.fail('STACK_GLOBAL needs two strings');
          this.push(this.global(module, name));
          break;
        }
        case 0x52: {
          const args = this.pop();
          const fn = this.pop();
          this.push(this.call(fn, args, 'REDUCE'));
          break;
        }
        case 0x81: {
          const args = this.pop();
          const cls = this.pop();
          if (tag(cls) !== 'opaque') this.fail('NEWOBJ is only expected for classes outside the table');
          this.push(this.call(cls, args, 'NEWOBJ'));
          break;
        }
        case 0x62: {
          const state = this.pop();
          const obj = this.top();
          if (tag(obj) === 'opaque') (obj as PyOpaque<N>).state = state;
          else this.table.build(this, obj, state);
          break;
        }
        case 0x51: {
          if (!this.table.persistentLoad) this.fail('disallowed opcode 0x51 (BINPERSID)');
          this.push(this.table.persistentLoad(this, this.pop()));
          break;
        }
        case 0x71:
          this.memo.set(this.u8(), this.top());
          break;
        case 0x72:
          this.memo.set(this.u32(), this.top());
          break;
        case 0x94:
          this.memo.set(this.memo.size, this.top());
          break;
        case 0x68:
          this.push(this.get(this.u8()));
          break;
        case 0x6a:
          this.push(this.get(this.u32()));
          break;
        default:
          this.fail(
            `disallowed opcode 0x${op.toString(16).padStart(2, '0')}${OPCODE_NAMES[op] ? ` (${OPCODE_NAMES[op]})` : ''}`,
          );
      }
    }
  }

  /** REDUCE/NEWOBJ: an opaque callable or argument makes an opaque result; nothing unknown is ever called. */
  private call(fn: PyValue<N>, args: PyValue<N>, op: string): PyValue<N> {
    if (tag(fn) === 'opaque') {
      const o = fn as PyOpaque<N>;
      return { t: 'opaque', global: o.global, offset: o.offset };
    }
    if (tag(fn) !== 'global') this.fail(`${op} of a non-callable`);
    const inner = findOpaque(args);
    if (inner) return { t: 'opaque', global: inner.global, offset: inner.offset };
    return this.table.reduce(this, (fn as PyGlobal).fn, args);
  }

  /** The list APPEND targets; undefined for an opaque object, whose items are dropped with it. */
  private list(): PyList<N> | undefined {
    const l = this.top();
    if (tag(l) === 'opaque') return undefined;
    if (tag(l) !== 'list') this.fail('APPEND target is not a list');
    return l as PyList<N>;
  }

  private setItem(k: PyValue<N>, v: PyValue<N>): void {
    const d = this.top();
    if (tag(d) === 'opaque') return;
    if (tag(d) !== 'dict') this.fail('SETITEM target is not a dict');
    if (typeof k !== 'string' && !(typeof k === 'number' && Number.isInteger(k)))
      this.fail('dict keys must be str or int');
    (d as PyDict<N>).map.set(k, v);
  }

  /** The items of a tuple of `n` items (any length when undefined). */
  tuple(v: PyValue<N>, n: number | undefined, what: string): PyValue<N>[] {
    if (tag(v) !== 'tuple' || (n !== undefined && (v as PyTuple<N>).items.length !== n))
      this.fail(`${what} has an unexpected structure`);
    return (v as PyTuple<N>).items;
  }

  /** A tuple of non-negative ints. */
  shape(v: PyValue<N>, what = 'shape'): number[] {
    const dims = this.tuple(v, undefined, what);
    if (!dims.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0))
      this.fail(`${what} must be non-negative ints`);
    return dims as number[];
  }
}

/** numpy's own values in an image-dict pickle. */
interface PyDType {
  t: 'dtype';
  code: 'u1' | 'O8';
}
/** An ndarray: empty after _reconstruct until BUILD fills either `arr` (uint8) or `objects` (object dtype). */
interface PyArray {
  t: 'array';
  arr?: NdArray;
  objects?: NumpyValue[];
}
type NumpyNative = PyDType | PyArray;
type NumpyValue = PyValue<NumpyNative>;
type NumpyVM = PickleMachine<NumpyNative>;

function dtypeOf(vm: NumpyVM, v: NumpyValue): 'u1' | 'O8' {
  if (tag(v) !== 'dtype') vm.fail('expected a numpy dtype');
  return (v as PyDType).code;
}

function bytesOf(vm: NumpyVM, v: NumpyValue, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) vm.fail(`${what} must be bytes`);
  return v;
}

/** A uint8 image array from raw bytes, converting Fortran order to C order. */
function uint8Array(vm: NumpyVM, shape: number[], data: Uint8Array, fortran: boolean): NdArray {
  if (data.length !== shapeSize(shape))
    vm.fail(`array data has ${data.length} bytes but shape [${shape.join(', ')}] needs ${shapeSize(shape)}`);
  if (!fortran) return { dtype: 'uint8', shape, data };
  const dec = new NpyDecoder({ descr: '|u1', fortranOrder: true, shape }, vm.source);
  dec.push(data);
  return dec.finish();
}

/** The only globals a numpy image-dict pickle needs (both numpy 1.x and 2.x module paths); all else is refused. */
const NUMPY_TABLE: GlobalTable<NumpyNative> = {
  globals: {
    'numpy.core.multiarray._reconstruct': 'reconstruct',
    'numpy._core.multiarray._reconstruct': 'reconstruct',
    'numpy.ndarray': 'ndarray',
    'numpy.dtype': 'dtype',
    'numpy.core.numeric._frombuffer': 'frombuffer',
    'numpy._core.numeric._frombuffer': 'frombuffer',
    '_codecs.encode': 'codecs_encode',
  },
  opaqueUnknown: false,

  reduce(vm: NumpyVM, fn: string, args: NumpyValue): NumpyValue {
    switch (fn) {
      case 'reconstruct': {
        const [cls, shape, tg] = vm.tuple(args, 3, '_reconstruct arguments');
        const ok = tag(cls!) === 'global' && (cls as PyGlobal).fn === 'ndarray';
        if (!ok || vm.shape(shape!).join() !== '0' || !(tg instanceof Uint8Array))
          vm.fail('unexpected _reconstruct arguments');
        return { t: 'array' };
      }
      case 'dtype': {
        const [code, align, copy] = vm.tuple(args, 3, 'dtype arguments');
        if (code !== 'u1' && code !== 'O8')
          vm.fail(`dtype '${String(code)}' is not allowed (only uint8 images in an object dict)`);
        if (align !== false || copy !== true) vm.fail('unexpected dtype arguments');
        return { t: 'dtype', code };
      }
      case 'frombuffer': {
        const [buf, dt, shape, order] = vm.tuple(args, 4, '_frombuffer arguments');
        if (dtypeOf(vm, dt!) !== 'u1') vm.fail('_frombuffer is only allowed for uint8 data');
        if (order !== 'C' && order !== 'F') vm.fail('unexpected array order');
        return {
          t: 'array',
          arr: uint8Array(vm, vm.shape(shape!), bytesOf(vm, buf!, 'buffer'), order === 'F'),
        };
      }
      case 'codecs_encode': {
        // protocol 2 stores bytes as _codecs.encode(latin-1 text, 'latin1')
        const [text, enc] = vm.tuple(args, 2, '_codecs.encode arguments');
        if (typeof text !== 'string' || enc !== 'latin1')
          vm.fail("_codecs.encode is only allowed as (str, 'latin1')");
        const out = new Uint8Array(text.length);
        for (let i = 0; i < text.length; i++) {
          const c = text.charCodeAt(i);
          if (c > 255) vm.fail('latin-1 text holds a character above 255');
          out[i] = c;
        }
        return out;
      }
      default:
        vm.fail('numpy.ndarray may only be passed to _reconstruct');
    }
  },

  build(vm: NumpyVM, obj: NumpyValue, state: NumpyValue): void {
    const t = tag(obj);
    if (t === 'dtype') {
      const s = vm.tuple(state, 8, 'dtype state');
      if (s[0] !== 3 || s[1] !== '|') vm.fail('unexpected dtype state');
      return;
    }
    const a = obj as PyArray;
    if (t !== 'array' || a.arr || a.objects) vm.fail('BUILD on an unexpected object');
    const [version, shapeV, dt, fortran, data] = vm.tuple(state, 5, 'ndarray state');
    if (version !== 1 || typeof fortran !== 'boolean') vm.fail('unexpected ndarray state');
    const shape = vm.shape(shapeV!);
    if (dtypeOf(vm, dt!) === 'u1') {
      a.arr = uint8Array(vm, shape, bytesOf(vm, data!, 'array data'), fortran);
    } else {
      const items = tag(data!) === 'list' ? (data as PyList<NumpyNative>).items : undefined;
      if (!items || items.length !== shapeSize(shape))
        vm.fail('object array state must list one item per element');
      a.objects = items;
    }
  },
};

/** Parses an np.save'd dict of str → uint8 array from memory. Values keep the dict's insertion order. */
export function parseImageDictNpy(buf: Uint8Array, source: string): Map<string, NdArray> {
  const header = parseNpyHeader(buf.subarray(0, npyPreludeLength(buf, source)), source);
  if (header.descr !== '|O' || header.shape.length !== 0) {
    throw new BadInputError(
      `${source}: expected a pickled dict (dtype '|O', shape ()), found dtype '${header.descr}' shape [${header.shape.join(', ')}]`,
    );
  }
  const root = new PickleMachine(buf.subarray(header.dataOffset), source, NUMPY_TABLE).run();
  const objects = tag(root) === 'array' ? (root as PyArray).objects : undefined;
  const dict = objects?.length === 1 ? objects[0]! : undefined;
  if (dict === undefined || tag(dict) !== 'dict') {
    throw new BadInputError(`${source}: the pickle does not hold a 0-d object array containing a dict`);
  }
  const out = new Map<string, NdArray>();
  for (const [k, v] of (dict as PyDict<NumpyNative>).map) {
    if (typeof k !== 'string') throw new BadInputError(`${source}: dict key ${k} is not a str`);
    const arr = tag(v) === 'array' ? (v as PyArray).arr : undefined;
    if (!arr) throw new BadInputError(`${source}: value for '${k}' is not a uint8 array`);
    out.set(k, arr);
  }
  return out;
}

/** Reads an np.save'd image dict (e.g. BOLD5000's img_dict.npy) without executing anything. */
export async function readImageDictNpy(path: string): Promise<Map<string, NdArray>> {
  let buf: Uint8Array;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new BadInputError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parseImageDictNpy(buf, path);
}

/** Pickle bytes builder for the writer. */
class Emitter {
  readonly pieces: Uint8Array[] = [];
  private small: number[] = [];

  op(...bytes: number[]): this {
    this.small.push(...bytes);
    return this;
  }
  int(v: number): this {
    if (v >= 0 && v < 256) return this.op(0x4b, v);
    if (v >= 0 && v < 65536) return this.op(0x4d, v & 0xff, v >> 8);
    return this.op(0x4a, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
  }
  private len32(n: number): number[] {
    return [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
  }
  str(s: string): this {
    const b = new TextEncoder().encode(s);
    this.op(0x58, ...this.len32(b.length));
    return this.op(...b);
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }
  /** BINBYTES referencing `data` without copying it. */
  bytes(data: Uint8Array): this {
    if (data.length > 0xffffffff) throw new RangeError('image too large for BINBYTES');
    this.op(0x42, ...this.len32(data.length));
    this.flush();
    this.pieces.push(data);
    return this;
  }
  flush(): void {
    if (this.small.length > 0) this.pieces.push(Uint8Array.from(this.small));
    this.small = [];
  }
}

/** The pickle pieces numpy 1.x np.save wrote for a dict of uint8 arrays (protocol 3). */
function imageDictPickle(images: Iterable<readonly [string, NdArray]>): Uint8Array[] {
  const MARK_OP = 0x28;
  const e = new Emitter();
  const dtypeState = (flags: number): Emitter =>
    e.op(MARK_OP).int(3).str('|').op(0x4e, 0x4e, 0x4e).int(-1).int(-1).int(flags).op(0x74, 0x62);
  // _reconstruct(ndarray, (0,), b'b'); the two globals are memoized as 0 and 1 on first use
  const reconstructArgs = (): Emitter => e.int(0).op(0x85, 0x43, 1, 0x62, 0x87, 0x52);
  e.op(0x80, 3)
    .global('numpy.core.multiarray', '_reconstruct')
    .op(0x71, 0)
    .global('numpy', 'ndarray')
    .op(0x71, 1);
  reconstructArgs();
  e.op(MARK_OP).int(1).op(0x29).global('numpy', 'dtype').op(0x71, 2).str('O8').op(0x89, 0x88, 0x87, 0x52);
  dtypeState(63);
  e.op(0x89, 0x5d, 0x7d, MARK_OP);
  for (const [name, arr] of images) {
    if (arr.dtype !== 'uint8') throw new RangeError(`image '${name}' is ${arr.dtype}, not uint8`);
    e.str(name).op(0x68, 0, 0x68, 1);
    reconstructArgs();
    e.op(MARK_OP).int(1).op(MARK_OP);
    for (const d of arr.shape) e.int(d);
    e.op(0x74, 0x68, 2).str('u1').op(0x89, 0x88, 0x87, 0x52);
    dtypeState(0);
    e.op(0x89)
      .bytes(arr.data as Uint8Array)
      .op(0x74, 0x62);
  }
  e.op(0x75, 0x61, 0x74, 0x62, 0x2e);
  e.flush();
  return e.pieces;
}

/** Writes a dict of uint8 images as np.save(path, dict) would (npy '|O' header + pickle), atomically. */
export async function writeImageDictNpy(
  path: string,
  images: Iterable<readonly [string, NdArray]>,
): Promise<void> {
  const dict = "{'descr': '|O', 'fortran_order': False, 'shape': (), }";
  const headerLen = Math.ceil((10 + dict.length + 1) / 64) * 64 - 10;
  const header = new Uint8Array(10 + headerLen);
  header.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, headerLen & 0xff, headerLen >> 8]);
  header.set(new TextEncoder().encode(dict.padEnd(headerLen - 1, ' ') + '\n'), 10);
  await writePiecesAtomic(path, [header, ...imageDictPickle(images)]);
}
