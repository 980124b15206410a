/**
 * TensorBoard event files (`events.out.tfevents.*`): scalar summaries as TFRecords of `tensorflow.Event`
 * protos, the format TensorBoard's EventAccumulator reads. Written here rather than with tfjs-node's
 * tf.node.summaryFileWriter because that exists only where the native backend loaded (a wasm or pure-JS
 * worker has no tf.node) and stamps each value with the time it is written: a training stage writes its curve
 * once, at its end, from the whole history (the checkpoint carries the steps before a resume), so a resumed
 * stage's curve has every step exactly once whatever backend ran it.
 *
 * Framing (TFRecord): uint64 length, uint32 masked CRC-32C of the length, the bytes, uint32 masked CRC-32C of
 * the bytes. Event: wall_time (1, double), step (2, int64), file_version (3, string) or summary (5);
 * Summary.value (1): tag (1, string), simple_value (2, float).
 */

export interface ScalarPoint {
  tag: string;
  step: number;
  value: number;
  /** Seconds since the epoch. */
  wallTime: number;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function maskedCrc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) crc = CRC32C_TABLE[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  crc = (crc ^ 0xffffffff) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** Protobuf wire encoding of the few field kinds an Event uses. */
class Proto {
  private readonly parts: Uint8Array[] = [];

  private varint(v: bigint): void {
    const out: number[] = [];
    let x = BigInt.asUintN(64, v);
    do {
      const byte = Number(x & 0x7fn);
      x >>= 7n;
      out.push(x ? byte | 0x80 : byte);
    } while (x);
    this.parts.push(Uint8Array.from(out));
  }

  private key(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  private fixed(field: number, wire: 1 | 5, size: 8 | 4, write: (view: DataView) => void): this {
    this.key(field, wire);
    const b = new Uint8Array(size);
    write(new DataView(b.buffer));
    this.parts.push(b);
    return this;
  }

  double(field: number, v: number): this {
    return this.fixed(field, 1, 8, (d) => d.setFloat64(0, v, true));
  }

  float(field: number, v: number): this {
    return this.fixed(field, 5, 4, (d) => d.setFloat32(0, v, true));
  }

  int64(field: number, v: number): this {
    this.key(field, 0);
    this.varint(BigInt(v));
    return this;
  }

  bytes(field: number, v: Uint8Array | string): this {
    const b = typeof v === 'string' ? new TextEncoder().encode(v) : v;
    this.key(field, 2);
    this.varint(BigInt(b.length));
    this.parts.push(b);
    return this;
  }

  done(): Uint8Array {
    return Buffer.concat(this.parts);
  }
}

function record(data: Uint8Array): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(data.length));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(maskedCrc32c(len));
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(maskedCrc32c(data));
  return Buffer.concat([len, head, data, tail]);
}

/** One event file holding the points (in the given order), after the file_version event TensorBoard expects. */
export function eventFile(points: ScalarPoint[]): Buffer {
  const start = points.reduce((t, p) => Math.min(t, p.wallTime), points[0]?.wallTime ?? 0);
  const events = [new Proto().double(1, start).bytes(3, 'brain.Event:2').done()];
  for (const p of points) {
    const value = new Proto().bytes(1, p.tag).float(2, p.value).done();
    const summary = new Proto().bytes(1, value).done();
    events.push(new Proto().double(1, p.wallTime).int64(2, p.step).bytes(5, summary).done());
  }
  return Buffer.concat(events.map(record));
}

/** The folder a stage's output keeps its event file in, and the file's name (TensorBoard finds it by prefix). */
export const TENSORBOARD_DIR = 'tensorboard';
export const eventFileName = (wallTime: number): string =>
  `${TENSORBOARD_DIR}/events.out.tfevents.${Math.floor(wallTime)}.lea`;
