/**
 * Float64 matrix arithmetic for ridge as hand-built TensorFlow functions in DT_DOUBLE (native backend only):
 * products with optional transposes, Grams, and an SPD solve (Cholesky and two triangular solves), each one
 * registered function (lib/compute/tf-function.ts, compileProgram) run by TensorFlow's own float64 kernels.
 *
 * tfjs has no float64 dtype and tfjs-node's binding moves only float32, int32 and bool tensors, so a float64
 * matrix travels as its bits: the Float64Array's bytes viewed as int32 pairs, shape [rows, cols, 2], which the
 * function Bitcasts to DT_DOUBLE [rows, cols] on the way in and back on the way out. Values are exact both ways,
 * and the matrices stay in TensorFlow between calls (a Gram is factorised for several alphas without a copy).
 */
import * as tf from '@tensorflow/tfjs';
import os from 'node:os';
import { compileProgram, type CompiledFunction, type Program, type Source } from '../compute/tf-function.js';
import type { AttrValue } from '../compute/tf-proto.js';
import { BadInputError } from '../errors.js';
import { mat, type Mat } from './matrix.js';

const DT_DOUBLE = 2;
const DT_INT32 = 3;

/** A float64 matrix held by the backend as the int32 tensor of its bits, [rows, cols, 2]. */
export interface Matrix64 {
  bits: tf.Tensor;
  rows: number;
  cols: number;
}

/**
 * `m` as a Matrix64. tfjs copies the values into TensorFlow at the tensor's first use, not here, so `m.data`
 * must not change until then.
 */
export function upload64(m: Mat): Matrix64 {
  const d = m.data;
  const ints = new Int32Array(d.buffer, d.byteOffset, d.length * 2);
  return { bits: tf.tensor(ints, [m.rows, m.cols, 2], 'int32'), rows: m.rows, cols: m.cols };
}

export async function download64(m: Matrix64): Promise<Mat> {
  const ints = (await m.bits.data()) as Int32Array;
  // a Float64Array view needs 8-byte alignment, which the binding's copy is not promised to have
  const aligned = ints.byteOffset % 8 === 0 ? ints : ints.slice();
  return mat(m.rows, m.cols, new Float64Array(aligned.buffer, aligned.byteOffset, m.rows * m.cols));
}

/** Adds ops to a Program in order; every value between ops is DT_DOUBLE unless said otherwise. */
class Builder {
  readonly program: Program = { ops: [], consts: [], args: [], outputs: [] };

  /** An argument holding a float64 array's bits, as DT_DOUBLE. */
  input(): Source {
    this.program.args.push(DT_INT32);
    const bits: Source = { kind: 'arg', index: this.program.args.length - 1 };
    return this.op('Bitcast', [bits], { T: { type: DT_INT32 }, type: { type: DT_DOUBLE } });
  }

  /** An int32 constant (shapes, axes, sizes). */
  ints(values: number[], shape = [values.length]): Source {
    this.program.consts.push({
      dtype: DT_INT32,
      shape,
      bytes: new Uint8Array(Int32Array.from(values).buffer),
    });
    return { kind: 'const', index: this.program.consts.length - 1 };
  }

  op(op: string, inputs: Source[], attrs: Record<string, AttrValue> = {}, dtype = DT_DOUBLE): Source {
    return this.multi(op, inputs, attrs, [dtype])[0] as Source;
  }

  /** An op with several outputs, of the given DataTypes. */
  multi(op: string, inputs: Source[], attrs: Record<string, AttrValue>, dtypes: number[]): Source[] {
    this.program.ops.push({ op, attrs: { T: { type: DT_DOUBLE }, ...attrs }, inputs, outputs: dtypes });
    const k = this.program.ops.length - 1;
    return dtypes.map((_, output) => ({ kind: 'op', op: k, output }));
  }

  /** Returns `x` (DT_DOUBLE) as its bits. */
  output(x: Source): void {
    this.program.outputs.push(this.op('Bitcast', [x], { type: { type: DT_INT32 } }, DT_INT32));
  }

  matMul(x: Source, y: Source, transposeA: boolean, transposeB: boolean): Source {
    return this.op('MatMul', [x, y], { transpose_a: { b: transposeA }, transpose_b: { b: transposeB } });
  }

  /** Rows [from, from + count) of a matrix: a view, not a copy, in TensorFlow's Slice. */
  rows(x: Source, from: number, count: number): Source {
    return this.op('Slice', [x, this.ints([from, 0]), this.ints([count, -1])], { Index: { type: DT_INT32 } });
  }

  concat(xs: Source[], axis: number): Source {
    return xs.length === 1
      ? (xs[0] as Source)
      : this.op('ConcatV2', [...xs, this.ints([axis], [])], {
          N: { i: xs.length },
          Tidx: { type: DT_INT32 },
        });
  }
}

/** One registered function per program structure; shapes enter only where a program's constants need them. */
const programs = new Map<string, CompiledFunction>();

function program(key: string, build: (b: Builder) => void): CompiledFunction {
  let fn = programs.get(key);
  if (!fn) {
    const b = new Builder();
    build(b);
    fn = compileProgram(b.program, { mode: 'graph', label: `float64 ${key}` });
    programs.set(key, fn);
  }
  return fn;
}

/** The values of `m`, then its tensor is freed. */
export async function take(m: Matrix64): Promise<Mat> {
  try {
    return await download64(m);
  } finally {
    m.bits.dispose();
  }
}

/** op(a)·op(b), op being the transpose where asked. */
export function matMul64(a: Matrix64, b: Matrix64, transposeA = false, transposeB = false): Matrix64 {
  const [m, k] = transposeA ? [a.cols, a.rows] : [a.rows, a.cols];
  const [k2, n] = transposeB ? [b.cols, b.rows] : [b.rows, b.cols];
  if (k !== k2) throw new RangeError(`matmul shapes ${m}x${k} and ${k2}x${n} do not align`);
  const fn = program(`matmul ${transposeA} ${transposeB}`, (p) => {
    p.output(p.matMul(p.input(), p.input(), transposeA, transposeB));
  });
  return { bits: fn.call([a.bits, b.bits])[0] as tf.Tensor, rows: m, cols: n };
}

/** `m` with its column means subtracted, and the means. */
export async function centre64(m: Matrix64): Promise<{ centred: Matrix64; mean: Float64Array }> {
  const fn = program('centre', (p) => {
    const x = p.input();
    const mean = p.op('Mean', [x, p.ints([0])], { keep_dims: { b: false }, Tidx: { type: DT_INT32 } });
    p.output(p.op('Sub', [x, mean]));
    p.output(mean);
  });
  const [centred, mean] = fn.call([m.bits]) as [tf.Tensor, tf.Tensor];
  return {
    centred: { bits: centred, rows: m.rows, cols: m.cols },
    mean: (await take({ bits: mean, rows: m.cols, cols: 1 })).data,
  };
}

/** Gram panels are this many columns wide (see normalEquations64). */
const PANEL = 256;

/**
 * XᵀX and XᵀY in one function. The Gram fills only its lower triangle (with the diagonal blocks whole; zeros
 * above), what spdSolve64 reads: like BLAS's syrk it skips the products above the diagonal, block row i being
 * panel i of X against X's first i + 1 panels, a third fewer flops at 1024 columns (TensorFlow has no syrk).
 * The panels are row blocks of Xᵀ, views, not copies; the products are independent, so they run side by side.
 */
export function normalEquations64(x: Matrix64, y: Matrix64): { gram: Matrix64; cross: Matrix64 } {
  if (x.rows !== y.rows) throw new RangeError(`X has ${x.rows} rows but Y has ${y.rows}`);
  const size = x.cols;
  const bounds: number[] = [];
  for (let c = 0; c < size; c += PANEL) bounds.push(c);
  bounds.push(size);
  const fn = program(`normal equations ${size}`, (p) => {
    const xt = p.op('Transpose', [p.input(), p.ints([1, 0])], { Tperm: { type: DT_INT32 } });
    const blockRows = bounds.slice(1).map((end, i) => {
      const start = bounds[i] as number;
      const row = p.matMul(p.rows(xt, start, end - start), p.rows(xt, 0, end), false, true);
      return end === size
        ? row
        : p.op('Pad', [row, p.ints([0, 0, 0, size - end], [2, 2])], { Tpaddings: { type: DT_INT32 } });
    });
    p.output(p.concat(blockRows, 0));
    p.output(p.matMul(xt, p.input(), false, false));
  });
  const [gram, cross] = fn.call([x.bits, y.bits]) as [tf.Tensor, tf.Tensor];
  return { gram: { bits: gram, rows: size, cols: size }, cross: { bits: cross, rows: size, cols: y.cols } };
}

/** x·xᵀ, the Gram of x's rows (ridge's dual kernel). */
export function gram64(x: Matrix64): Matrix64 {
  const fn = program('gram rows', (p) => {
    const v = p.input();
    p.output(p.matMul(v, v, false, true));
  });
  return { bits: fn.call([x.bits])[0] as tf.Tensor, rows: x.rows, cols: x.rows };
}

/** The bits of a float64 scalar, as an argument of a program. */
function scalar64(v: number): tf.Tensor {
  return tf.tensor(new Int32Array(Float64Array.of(v).buffer), [2], 'int32');
}

/** Right-hand sides narrower than this are not split across threads. */
const MIN_SPLIT = 128;

/**
 * W = (A + alpha·I)⁻¹·B for a symmetric A (p x p; only its lower triangle is read) with A + alpha·I positive
 * definite, by a Cholesky factorisation and two triangular solves: the substitution form LAPACK's potrs uses,
 * as scikit-learn's Ridge does. TensorFlow's triangular solve runs on one thread per matrix, so B's columns are
 * cut into one block per core, solved side by side.
 */
export async function spdSolve64(a: Matrix64, b: Matrix64, alpha: number): Promise<Matrix64> {
  if (a.rows !== a.cols || a.rows !== b.rows)
    throw new RangeError(`spdSolve shapes ${a.rows}x${a.cols} and ${b.rows}x${b.cols} do not fit`);
  const blocks = Math.max(1, Math.min(os.availableParallelism(), Math.floor(b.cols / MIN_SPLIT)));
  const widths = Array.from({ length: blocks }, (_, i) => Math.floor((b.cols + i) / blocks));
  const fn = program(`spd solve ${widths.join(',')}`, (p) => {
    const g = p.input();
    const rhs = p.input();
    const shift = p.input();
    const diag = p.op('AddV2', [p.op('MatrixDiagPart', [g]), shift]);
    const l = p.op('Cholesky', [p.op('MatrixSetDiag', [g, diag])]);
    const solveL = (x: Source, adjoint: boolean): Source =>
      p.op('MatrixTriangularSolve', [l, x], { lower: { b: true }, adjoint: { b: adjoint } });
    const parts =
      blocks === 1
        ? [rhs]
        : p.multi(
            'SplitV',
            [rhs, p.ints(widths), p.ints([1], [])],
            { num_split: { i: blocks }, Tlen: { type: DT_INT32 } },
            widths.map(() => DT_DOUBLE),
          );
    p.output(
      p.concat(
        parts.map((part) => solveL(solveL(part, false), true)),
        1,
      ),
    );
    // TensorFlow's Cholesky does not fail on a matrix that is not positive definite: it fills L with NaNs
    p.output(p.op('MatrixDiagPart', [l]));
  });
  const shift = scalar64(alpha);
  const [w, pivots] = fn.call([a.bits, b.bits, shift]) as [tf.Tensor, tf.Tensor];
  shift.dispose();
  const d = await take({ bits: pivots, rows: a.rows, cols: 1 });
  if (d.data.every((v) => v > 0)) return { bits: w, rows: b.rows, cols: b.cols };
  w.dispose();
  throw new BadInputError('matrix is not positive definite (its Cholesky factorisation failed)');
}
