/**
 * One TensorFlow function in place of thousands of eagerly dispatched ops: a pure tensor function (a training
 * step's forward, tfjs's own backward and the optimiser update) is run once eagerly through a recorder at the
 * native binding's op boundary, the recorded ops become a FunctionDef (compiled by XLA when `_XlaMustCompile` is
 * set), the patched binding registers it in the eager context (scripts/tfjs-binding-functions.patch), and from
 * then on one executeOp runs the whole step. Only the native backends have the binding; elsewhere callers run
 * their function eagerly (compiledModeFor says which). A program built by hand in the same form (ops TensorFlow has
 * but tfjs does not, as the float64 ridge arithmetic in lib/alignment/float64-ops.ts) registers the same way
 * (compileProgram).
 *
 * What becomes what, by where a recorded op's input came from:
 *  - an output of an earlier recorded op: an edge;
 *  - one of the declared inputs: a function argument (parameters, moments, the batch, every host draw, the
 *    learning rate: whatever changes from call to call);
 *  - anything else (an upload inside the function, a cached constant made earlier): a Const node.
 * A value that changes between calls but is not declared would be baked in silently, so compileFunction traces
 * twice, with the inputs of two different calls, and refuses a function whose constants differ, naming the op
 * that reads one. A function that reads a computed value back to JS (dataSync) cannot be one program: refused too.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import type { CompileMode } from './compile-modes.js';
import {
  decodeOpList,
  encodeFunctionDef,
  shapeProto,
  type ArgDef,
  type AttrValue,
  type FunctionDef,
  type NodeDef,
  type OpDef,
} from './tf-proto.js';

/** The parts of tfjs-node's binding used here; registerFunction and getAllOpList come from the patch. */
interface Binding {
  createTensor(shape: number[], dtype: number, values: unknown): number;
  executeOp(name: string, attrs: TfjsAttr[], inputs: number[], numOutputs: number): OutputInfo[];
  tensorDataSync(id: number): ArrayLike<number>;
  registerFunction?(functionDef: Uint8Array): void;
  getAllOpList?(): Uint8Array;
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
}

interface NativeBackend {
  binding: Binding;
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  executeMultipleOutputs(name: string, attrs: TfjsAttr[], inputs: tf.Tensor[], n: number): tf.Tensor[];
}

interface TfjsAttr {
  name: string;
  type: number;
  value: unknown;
}

interface OutputInfo {
  id: number;
  shape: number[];
  dtype: number;
}

/** TensorFlow's DataType numbers of tfjs's dtypes. */
const TF_DTYPE: Record<string, number> = { float32: 1, int32: 3, bool: 10 };

function native(): NativeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as NativeBackend;
  return typeof backend.binding?.registerFunction === 'function' ? backend : undefined;
}

/**
 * The mode a step runs in: the configured one where the backend can run functions, else 'eager' with the reason
 * (wasm and cpu backends, or a native addon built without the patch).
 */
export function compiledModeFor(requested: CompileMode): { mode: CompileMode; reason?: string } {
  if (requested === 'eager') return { mode: 'eager' };
  if (tf.getBackend() !== 'tensorflow')
    return { mode: 'eager', reason: `the ${tf.getBackend()} backend runs ops one by one` };
  if (!native())
    return {
      mode: 'eager',
      reason: 'the native addon lacks registerFunction (rebuild it: npm run setup)',
    };
  return { mode: requested };
}

let opDefs: Map<string, OpDef> | undefined;
function opDefOf(binding: Binding, op: string): OpDef {
  opDefs ??= decodeOpList((binding.getAllOpList as () => Uint8Array)());
  const def = opDefs.get(op);
  if (!def) throw new Error(`op ${op} is not registered in this libtensorflow`);
  return def;
}

/** Where one input of a program's op comes from. */
export type Source =
  | { kind: 'op'; op: number; output: number }
  | { kind: 'arg'; index: number }
  | { kind: 'const'; index: number };

/** One op of a program; the type attributes eager execution infers from the inputs may be left out. */
export interface ProgramOp {
  op: string;
  attrs: Record<string, AttrValue>;
  inputs: Source[];
  /** The DataType of each output. */
  outputs: number[];
}

export interface ProgramConst {
  dtype: number;
  shape: number[];
  bytes: Uint8Array;
}

/** A TensorFlow function before registration: what a trace recorded, or what a caller built by hand. */
export interface Program {
  ops: ProgramOp[];
  consts: ProgramConst[];
  /** The DataType of each argument. */
  args: number[];
  outputs: Source[];
}

function bytesOf(values: ArrayLike<number> | ArrayBufferView): Uint8Array {
  if (!ArrayBuffer.isView(values)) throw new Error('a string or array upload cannot be a constant');
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** Runs `fn(inputs)` once eagerly, recording every op the native binding executes. */
function trace(
  backend: NativeBackend,
  fn: (inputs: tf.Tensor[]) => tf.Tensor[],
  inputs: tf.Tensor[],
  label: string,
): Program {
  const binding = backend.binding;
  // inputs whose values still sit in JS are uploaded now, outside the recording, so they are arguments
  const argIds = backend.getInputTensorIds(inputs);
  const sources = new Map<number, Source>();
  argIds.forEach((id, index) => {
    if (!sources.has(id)) sources.set(id, { kind: 'arg', index });
  });
  const t: Program = {
    ops: [],
    consts: [],
    args: inputs.map((x) => TF_DTYPE[x.dtype] as number),
    outputs: [],
  };
  const produced = new Map<number, string>();
  const addConst = (id: number, dtype: number, shape: number[], values: ArrayLike<number>): void => {
    sources.set(id, { kind: 'const', index: t.consts.length });
    t.consts.push({ dtype, shape: [...shape], bytes: bytesOf(values) });
  };
  const { createTensor, executeOp, tensorDataSync } = binding;
  const { getInputTensorIds } = backend;
  // the addon's exports are read-only: the backend gets a recording stand-in for the duration of the trace
  const recorder = Object.create(binding) as Binding;
  const override = (overrides: Partial<Binding>): void => {
    for (const [k, value] of Object.entries(overrides)) Object.defineProperty(recorder, k, { value });
  };
  override({
    createTensor: (shape, dtype, values) => {
      const id = createTensor.call(binding, shape, dtype, values);
      addConst(id, dtype, shape, values as ArrayLike<number>);
      return id;
    },
  });
  // a tensor made before the function and not declared: its value now, as a constant
  backend.getInputTensorIds = (tensors) => {
    const ids = getInputTensorIds.call(backend, tensors);
    ids.forEach((id, i) => {
      if (sources.has(id)) return;
      const x = tensors[i] as tf.Tensor;
      addConst(id, TF_DTYPE[x.dtype] as number, x.shape, tensorDataSync.call(binding, id));
    });
    return ids;
  };
  override({
    tensorDataSync: (id) => {
      const op = produced.get(id);
      if (op !== undefined)
        throw new Error(
          `${label}: the step reads ${op}'s value back to JavaScript, so it cannot run as one compiled function`,
        );
      return tensorDataSync.call(binding, id);
    },
  });
  const record: Binding['executeOp'] = (name, attrs, inputIds, numOutputs) => {
    const outputs = executeOp.call(binding, name, attrs, inputIds, numOutputs);
    const k = t.ops.length;
    t.ops.push({
      op: name,
      attrs: Object.fromEntries(attrs.map((a) => [a.name, attrValue(binding, a)])),
      inputs: inputIds.map((id) => {
        const s = sources.get(id);
        if (!s) throw new Error(`${label}: op ${name} reads tensor ${id}, which the recorder never saw`);
        return s;
      }),
      outputs: outputs.map((o) => o.dtype),
    });
    outputs.forEach((o, output) => {
      sources.set(o.id, { kind: 'op', op: k, output });
      produced.set(o.id, `op ${k} (${name})`);
    });
    return outputs;
  };
  override({ executeOp: record });
  backend.binding = recorder;
  try {
    tf.tidy(() => {
      const outs = fn(inputs);
      t.outputs = backend.getInputTensorIds(outs).map((id) => sources.get(id) as Source);
      return undefined;
    });
  } finally {
    backend.binding = binding;
    backend.getInputTensorIds = getInputTensorIds;
  }
  return t;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Throws unless two traces are the same program with the same constants (see the file's comment). */
function checkSameProgram(a: Program, b: Program, label: string): void {
  const structure = (t: Program): string =>
    JSON.stringify({ ops: t.ops, outputs: t.outputs, consts: t.consts.map((c) => [c.dtype, c.shape]) });
  if (structure(a) !== structure(b)) {
    const k = a.ops.findIndex((op, i) => JSON.stringify(op) !== JSON.stringify(b.ops[i]));
    const where =
      k < 0 ? 'its outputs' : `op ${k}: ${a.ops[k]?.op ?? 'none'} against ${b.ops[k]?.op ?? 'none'}`;
    throw new Error(`${label}: two calls ran different ops (first difference at ${where}); cannot compile`);
  }
  a.consts.forEach((c, index) => {
    if (sameBytes(c.bytes, (b.consts[index] as ProgramConst).bytes)) return;
    const k = a.ops.findIndex((op) => op.inputs.some((s) => s.kind === 'const' && s.index === index));
    throw new Error(
      `${label}: op ${k} (${a.ops[k]?.op}) reads a value uploaded inside the step that differs between two ` +
        'calls; pass it as an input of the step instead of baking it in',
    );
  });
}

function attrValue(binding: Binding, a: TfjsAttr): AttrValue {
  const list = Array.isArray(a.value);
  // copies: the recorded program keeps no array tfjs might reuse
  const items = <T>(): T[] => [...(a.value as T[])];
  switch (a.type) {
    case binding.TF_ATTR_STRING:
      return { s: new TextEncoder().encode(String(a.value)) };
    case binding.TF_ATTR_INT:
      return list ? { list: { i: items<number>() } } : { i: Number(a.value) };
    case binding.TF_ATTR_FLOAT:
      return list ? { list: { f: items<number>() } } : { f: Number(a.value) };
    case binding.TF_ATTR_BOOL:
      return list ? { list: { b: items<boolean>() } } : { b: Boolean(a.value) };
    case binding.TF_ATTR_TYPE:
      return list ? { list: { type: items<number>() } } : { type: Number(a.value) };
    case binding.TF_ATTR_SHAPE:
      return { shape: shapeProto(a.value as number[]) };
    default:
      throw new Error(`attribute ${a.name} has a type (${a.type}) the recorder does not know`);
  }
}

/** How many tensors each argument of `args` takes, from the node's attributes (a list argument's length). */
function argCounts(args: ArgDef[], attr: Record<string, AttrValue>, total: number): number[] {
  const known = args.map((arg) => {
    if (arg.number_attr) return attr[arg.number_attr]?.i;
    if (arg.type_list_attr) return attr[arg.type_list_attr]?.list?.type?.length;
    return 1;
  });
  const unknown = known.filter((n) => n === undefined).length;
  if (unknown > 1) throw new Error('more than one list argument of unknown length');
  const rest = total - known.reduce<number>((s, n) => s + (n ?? 0), 0);
  return known.map((n) => n ?? rest);
}

/** One program op as a NodeDef: the attributes eager execution infers from the inputs are filled in here. */
function nodeDef(k: number, op: ProgramOp, def: OpDef, inputDtypes: number[], inputRefs: string[]): NodeDef {
  const attr: Record<string, AttrValue> = { ...op.attrs };
  const inputArgs = def.input_arg ?? [];
  let at = 0;
  argCounts(inputArgs, attr, inputDtypes.length).forEach((count, i) => {
    const arg = inputArgs[i] as ArgDef;
    const dtypes = inputDtypes.slice(at, at + count);
    at += count;
    if (arg.number_attr && !attr[arg.number_attr]) attr[arg.number_attr] = { i: count };
    if (arg.type_attr && !attr[arg.type_attr] && dtypes.length > 0) attr[arg.type_attr] = { type: dtypes[0] };
    if (arg.type_list_attr && !attr[arg.type_list_attr])
      attr[arg.type_list_attr] = { list: { type: dtypes } };
  });
  const outputArgs = def.output_arg ?? [];
  let out = 0;
  argCounts(outputArgs, attr, op.outputs.length).forEach((count, i) => {
    const arg = outputArgs[i] as ArgDef;
    if (arg.type_attr && !attr[arg.type_attr] && count > 0)
      attr[arg.type_attr] = { type: op.outputs[out] as number };
    out += count;
  });
  for (const a of def.attr ?? []) if (!attr[a.name] && a.default_value) attr[a.name] = a.default_value;
  return { name: `op${k}`, op: op.op, input: inputRefs, attr };
}

/** `op<k>:<output arg>:<index>` for each flat output of a node, as a FunctionDef names them. */
function outputRefs(k: number, def: OpDef, node: NodeDef, outputs: number): string[] {
  const refs: string[] = [];
  const args = def.output_arg ?? [];
  argCounts(args, node.attr, outputs).forEach((count, i) => {
    for (let j = 0; j < count; j++) refs.push(`op${k}:${(args[i] as ArgDef).name}:${j}`);
  });
  return refs;
}

function functionDef(binding: Binding, t: Program, mode: 'xla' | 'graph'): FunctionDef {
  const nodes: NodeDef[] = t.consts.map((c, j) => ({
    name: `const${j}`,
    op: 'Const',
    input: [],
    attr: {
      dtype: { type: c.dtype },
      value: { tensor: { dtype: c.dtype, tensor_shape: shapeProto(c.shape), tensor_content: c.bytes } },
    },
  }));
  const refs: string[][] = [];
  const dtypeOf = (s: Source): number =>
    s.kind === 'op'
      ? (t.ops[s.op]?.outputs[s.output] as number)
      : s.kind === 'arg'
        ? (t.args[s.index] as number)
        : (t.consts[s.index]?.dtype as number);
  const refOf = (s: Source): string =>
    s.kind === 'op'
      ? (refs[s.op]?.[s.output] as string)
      : s.kind === 'arg'
        ? `in${s.index}`
        : `const${s.index}:output:0`;
  t.ops.forEach((op, k) => {
    const def = opDefOf(binding, op.op);
    const node = nodeDef(k, op, def, op.inputs.map(dtypeOf), op.inputs.map(refOf));
    nodes.push(node);
    refs.push(outputRefs(k, def, node, op.outputs.length));
  });
  const ret: Record<string, string> = {};
  t.outputs.forEach((s, i) => {
    if (s.kind === 'op') ret[`out${i}`] = refOf(s);
    else {
      // an argument or a constant returned as it is: through an Identity, which a FunctionDef needs there
      nodes.push({
        name: `out${i}_identity`,
        op: 'Identity',
        input: [refOf(s)],
        attr: { T: { type: dtypeOf(s) } },
      });
      ret[`out${i}`] = `out${i}_identity:output:0`;
    }
  });
  const fn: FunctionDef = {
    signature: {
      name: '',
      input_arg: t.args.map((type, i) => ({ name: `in${i}`, type })),
      output_arg: t.outputs.map((s, i) => ({ name: `out${i}`, type: dtypeOf(s) })),
    },
    attr: mode === 'xla' ? { _XlaMustCompile: { b: true } } : {},
    node_def: nodes,
    ret,
  };
  // the name is the content's hash: the same program registers once, another never collides with it
  const hash = createHash('sha256').update(encodeFunctionDef(fn)).digest('hex').slice(0, 16);
  fn.signature.name = `lea_${mode}_${hash}`;
  return fn;
}

/** The key a compiled program is cached under: its inputs' dtypes and shapes (a program is made per shape). */
export function shapeKey(inputs: readonly tf.Tensor[]): string {
  return inputs.map((t) => `${t.dtype}[${t.shape.join(',')}]`).join(' ');
}

/** A registered function: call() runs it as one op. */
export interface CompiledFunction {
  readonly name: string;
  readonly mode: 'xla' | 'graph';
  /** Ops in the program: for a traced function, the eager ops one call replaces. */
  readonly tracedOps: number;
  call(inputs: tf.Tensor[]): tf.Tensor[];
}

function nativeOrThrow(mode: 'xla' | 'graph', label: string): NativeBackend {
  const backend = native();
  if (!backend) throw new Error(`${label}: ${compiledModeFor(mode).reason}`);
  return backend;
}

/**
 * Registers `program` as a TensorFlow function (one place builds FunctionDefs: traced steps and hand-built
 * programs alike) and returns it. Its arguments and outputs must be dtypes tfjs has (float32, int32, bool):
 * other dtypes travel as their bits (Bitcast).
 */
export function compileProgram(
  program: Program,
  opts: { mode: 'xla' | 'graph'; label: string },
): CompiledFunction {
  const backend = nativeOrThrow(opts.mode, opts.label);
  const def = functionDef(backend.binding, program, opts.mode);
  (backend.binding.registerFunction as (b: Uint8Array) => void)(encodeFunctionDef(def));
  const { args, outputs } = program;
  return {
    name: def.signature.name,
    mode: opts.mode,
    tracedOps: program.ops.length,
    call(x) {
      if (x.length !== args.length)
        throw new Error(`${opts.label}: ${x.length} inputs, the function takes ${args.length}`);
      return backend.executeMultipleOutputs(def.signature.name, [], x, outputs.length);
    },
  };
}

/**
 * Traces `fn` with `inputs[0]` and, when given, `inputs[1]` (the inputs of a second, different call; see the
 * file's comment) after one untraced warm-up call, registers the program and returns it. `fn` must be pure: it
 * reads its inputs and constants, assigns nothing, draws nothing, and returns new tensors (every output it wants
 * back).
 */
export function compileFunction(
  fn: (inputs: tf.Tensor[]) => tf.Tensor[],
  inputs: [tf.Tensor[]] | [tf.Tensor[], tf.Tensor[]],
  opts: { mode: 'xla' | 'graph'; label: string },
): CompiledFunction {
  const backend = nativeOrThrow(opts.mode, opts.label);
  // one untraced run first: a model may make and cache constants on its first call, which later calls reuse
  tf.tidy(() => {
    fn(inputs[0]);
  });
  const first = trace(backend, fn, inputs[0], opts.label);
  if (inputs[1]) checkSameProgram(first, trace(backend, fn, inputs[1], opts.label), opts.label);
  return compileProgram(first, opts);
}
