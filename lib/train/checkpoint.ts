/**
 * Training checkpoints: everything needed to continue a run bit for bit, as two safetensors files.
 *   model.safetensors        the parameters under their PyTorch names (loadable as a model by later stages)
 *   train-state.safetensors  AdamW moments (optimizer.exp_avg.<name>, optimizer.exp_avg_sq.<name>, shaped like
 *                            the parameter), step, every Rng state (rng.<stream>, 4 uint32 words as int64) and
 *                            the data order (data_order.perm / .cursor / .epoch)
 * A checkpoint lives in a CheckpointStore: a local folder, or the artifact store (one artifact per checkpoint,
 * manifest written last, under a key prefix given by the caller). Either way a checkpoint is complete or absent.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RngState } from '../compute/rng.js';
import { BadInputError } from '../errors.js';
import { loadParamsStrict, paramsToArrays, type Params } from '../models/layers.js';
import type { ArtifactRef, ArtifactStore } from '../storage/artifact-store.js';
import type { NdArray } from '../tensors/ndarray.js';
import { readSafetensors, writeSafetensors } from '../tensors/safetensors.js';
import type { AdamWState } from './adamw.js';

export const CHECKPOINT_FORMAT = 'lea-checkpoint/2';
/**
 * Earlier formats this code still resumes, each with why the continuation is not bit for bit what the code that
 * wrote it would have computed. The files are laid out alike; what changed is the arithmetic after them.
 */
const OLDER_FORMATS = new Map<string, string>([
  [
    'lea-checkpoint/1',
    'the checkpoint was written before the fused backward passes and the multi-tensor AdamW (lea-checkpoint/1); ' +
      'it resumes exactly as stored, but the steps after it differ in float rounding from what the code that wrote ' +
      'it would have computed (other gradient kernels, and a clipping norm summed per parameter group)',
  ],
]);
export const MODEL_FILE = 'model.safetensors';
export const STATE_FILE = 'train-state.safetensors';
const META_FILE = 'checkpoint.json';

export interface CheckpointMeta {
  format: string;
  stage: string;
  step: number;
  iterations: number;
  /** Loss of the last step before the checkpoint. */
  loss: number;
}

export interface CheckpointRef {
  /** A folder (local store) or an artifact key. */
  location: string;
  step: number;
  /** The artifact reference when the checkpoint lives in the artifact store. */
  artifact?: ArtifactRef;
}

export interface CheckpointStore {
  readonly description: string;
  /** A new empty local folder to write one checkpoint's files into. */
  staging(): Promise<string>;
  /** Turns a staged folder into the checkpoint of meta.step (replacing one of the same step); consumes it. */
  commit(staging: string, meta: CheckpointMeta): Promise<CheckpointRef>;
  /** The complete checkpoint with the highest step, if any. */
  latest(): Promise<CheckpointRef | undefined>;
  /** A local folder holding the checkpoint's files; release() removes any downloaded copy. */
  open(ref: CheckpointRef): Promise<{ dir: string; release(): Promise<void> }>;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(9, '0')}`;
}

const NAME = /^step-(\d{9})$/;

/** Checkpoints as folders root/step-NNNNNNNNN/, each made visible by one rename once complete. */
export class LocalCheckpointStore implements CheckpointStore {
  constructor(readonly root: string) {}

  get description(): string {
    return `folder ${this.root}`;
  }

  async staging(): Promise<string> {
    await mkdir(this.root, { recursive: true });
    const dir = join(this.root, `.staging-${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(dir);
    return dir;
  }

  async commit(staging: string, meta: CheckpointMeta): Promise<CheckpointRef> {
    await writeFile(join(staging, META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
    const dir = join(this.root, checkpointName(meta.step));
    await rm(dir, { recursive: true, force: true });
    await rename(staging, dir);
    return { location: dir, step: meta.step };
  }

  async latest(): Promise<CheckpointRef | undefined> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const steps = names.map((n) => NAME.exec(n)).filter((m): m is RegExpExecArray => m !== null);
    for (const m of steps.sort((a, b) => Number(b[1]) - Number(a[1]))) {
      const dir = join(this.root, m[0]);
      if (await stat(join(dir, META_FILE)).catch(() => undefined))
        return { location: dir, step: Number(m[1]) };
    }
    return undefined;
  }

  async open(ref: CheckpointRef): Promise<{ dir: string; release(): Promise<void> }> {
    return { dir: ref.location, release: async () => undefined };
  }
}

/** Checkpoints as artifacts `${keyPrefix}/step-NNNNNNNNN` (files streamed from a temporary folder). */
export class ArtifactCheckpointStore implements CheckpointStore {
  constructor(
    private readonly store: ArtifactStore,
    readonly keyPrefix: string,
  ) {}

  get description(): string {
    return `artifacts ${this.keyPrefix}/step-*`;
  }

  staging(): Promise<string> {
    return mkdtemp(join(tmpdir(), 'lea-ckpt-'));
  }

  async commit(staging: string, meta: CheckpointMeta): Promise<CheckpointRef> {
    try {
      const key = `${this.keyPrefix}/${checkpointName(meta.step)}`;
      const files = [MODEL_FILE, STATE_FILE].map((path) => ({ path, fromFile: join(staging, path) }));
      const artifact = await this.store.put(key, files, { ...meta }, { overwrite: true });
      return { location: key, step: meta.step, artifact };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  async latest(): Promise<CheckpointRef | undefined> {
    const prefix = `${this.keyPrefix}/`;
    let best: CheckpointRef | undefined;
    for (const key of await this.store.list(prefix)) {
      const m = NAME.exec(key.slice(prefix.length));
      if (m && (!best || Number(m[1]) > best.step)) best = { location: key, step: Number(m[1]) };
    }
    return best;
  }

  async open(ref: CheckpointRef): Promise<{ dir: string; release(): Promise<void> }> {
    const dir = await mkdtemp(join(tmpdir(), 'lea-ckpt-'));
    try {
      await this.store.download(ref.artifact ?? ref.location, dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return { dir, release: () => rm(dir, { recursive: true, force: true }) };
  }
}

export interface DataOrderState {
  epoch: number;
  cursor: number;
  perm: Int32Array;
}

/** What, besides the weights, a checkpoint restores. */
export interface TrainState {
  step: number;
  optimizer: AdamWState;
  rngs: Record<string, RngState>;
  dataOrder: DataOrderState;
  /** The losses of the steps up to `step` (the last ones; older checkpoints hold none), so a resumed stage
   * still reports its whole loss history. */
  losses?: Float32Array;
  /** The global gradient norm of the same steps (absent in checkpoints from before it was recorded). */
  gradNorms?: Float32Array;
}

function int64(values: number[], shape: number[]): NdArray {
  return { dtype: 'int64', shape, data: BigInt64Array.from(values.map((v) => BigInt(v))) };
}

/** Writes model.safetensors and train-state.safetensors into `dir`. */
export async function writeCheckpointFiles(
  dir: string,
  params: Params,
  state: TrainState,
  info: { stage: string; model: unknown; training: unknown },
): Promise<void> {
  const meta = { format: CHECKPOINT_FORMAT, stage: info.stage, step: String(state.step) };
  await writeSafetensors(join(dir, MODEL_FILE), paramsToArrays(params), {
    ...meta,
    model: JSON.stringify(info.model),
  });
  const tensors = new Map<string, NdArray>();
  const { names, sizes, m, v } = state.optimizer;
  let offset = 0;
  names.forEach((name, i) => {
    const size = sizes[i] as number;
    const shape = [...(params.get(name)?.shape ?? [size])];
    tensors.set(`optimizer.exp_avg.${name}`, {
      dtype: 'float32',
      shape,
      data: m.subarray(offset, offset + size),
    });
    tensors.set(`optimizer.exp_avg_sq.${name}`, {
      dtype: 'float32',
      shape,
      data: v.subarray(offset, offset + size),
    });
    offset += size;
  });
  tensors.set('step', int64([state.step], []));
  tensors.set('optimizer.step', int64([state.optimizer.step], []));
  for (const [stream, rng] of Object.entries(state.rngs))
    tensors.set(`rng.${stream}`, int64([...rng.s], [4]));
  tensors.set('data_order.perm', {
    dtype: 'int32',
    shape: [state.dataOrder.perm.length],
    data: state.dataOrder.perm,
  });
  tensors.set('data_order.cursor', int64([state.dataOrder.cursor], []));
  tensors.set('data_order.epoch', int64([state.dataOrder.epoch], []));
  for (const [name, history] of [
    ['losses', state.losses],
    ['grad_norms', state.gradNorms],
  ] as const)
    if (history) tensors.set(name, { dtype: 'float32', shape: [history.length], data: history });
  await writeSafetensors(join(dir, STATE_FILE), tensors, {
    ...meta,
    training: JSON.stringify(info.training),
  });
}

function scalarOf(tensors: Map<string, NdArray>, name: string, source: string): number {
  const t = tensors.get(name);
  if (!t || t.dtype !== 'int64' || t.data.length !== 1)
    throw new BadInputError(`${source}: missing or malformed '${name}'`);
  return Number((t.data as BigInt64Array)[0]);
}

/**
 * Loads a checkpoint's weights into `params` (refusing another model config, naming the tensor) and returns
 * the training state, whose optimizer part is checked against the same parameters.
 */
export async function readCheckpointFiles(
  dir: string,
  params: Params,
  stage: string,
  rngStreams: string[],
): Promise<{ state: TrainState; training: unknown; notice?: string }> {
  const modelPath = join(dir, MODEL_FILE);
  const model = await readSafetensors(modelPath);
  const format = model.metadata.format ?? '';
  const notice = OLDER_FORMATS.get(format);
  if ((format !== CHECKPOINT_FORMAT && notice === undefined) || model.metadata.stage !== stage) {
    throw new BadInputError(
      `${modelPath}: not a '${stage}' checkpoint (format ${model.metadata.format ?? 'none'}, stage ${model.metadata.stage ?? 'none'})`,
    );
  }
  loadParamsStrict(params, model.tensors, modelPath);
  const statePath = join(dir, STATE_FILE);
  const { tensors, metadata } = await readSafetensors(statePath);
  const names = [...params.keys()];
  const sizes = names.map((n) => (params.get(n) as { size: number }).size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const m = new Float32Array(total);
  const v = new Float32Array(total);
  let offset = 0;
  names.forEach((name, i) => {
    for (const [kind, into] of [
      ['exp_avg', m],
      ['exp_avg_sq', v],
    ] as const) {
      const key = `optimizer.${kind}.${name}`;
      const t = tensors.get(key);
      if (!t || t.dtype !== 'float32' || t.data.length !== sizes[i]) {
        throw new BadInputError(
          `${statePath}: optimizer tensor '${key}' is missing or has the wrong size for the model`,
        );
      }
      into.set(t.data as Float32Array, offset);
    }
    offset += sizes[i] as number;
  });
  const rngs: Record<string, RngState> = {};
  for (const stream of rngStreams) {
    const t = tensors.get(`rng.${stream}`);
    if (!t || t.dtype !== 'int64' || t.data.length !== 4)
      throw new BadInputError(`${statePath}: missing RNG state 'rng.${stream}'`);
    const w = Array.from(t.data as BigInt64Array, Number);
    rngs[stream] = { s: [w[0] as number, w[1] as number, w[2] as number, w[3] as number] };
  }
  const perm = tensors.get('data_order.perm');
  if (!perm || perm.dtype !== 'int32') throw new BadInputError(`${statePath}: missing 'data_order.perm'`);
  const step = scalarOf(tensors, 'step', statePath);
  const history = (name: string) => {
    const t = tensors.get(name);
    if (t && (t.dtype !== 'float32' || t.data.length > step))
      throw new BadInputError(
        `${statePath}: malformed '${name}' (${t.dtype}, ${t.data.length} for step ${step})`,
      );
    return t?.data as Float32Array | undefined;
  };
  const losses = history('losses');
  const gradNorms = history('grad_norms');
  return {
    state: {
      step,
      optimizer: { step: scalarOf(tensors, 'optimizer.step', statePath), names, sizes, m, v },
      rngs,
      dataOrder: {
        epoch: scalarOf(tensors, 'data_order.epoch', statePath),
        cursor: scalarOf(tensors, 'data_order.cursor', statePath),
        perm: perm.data as Int32Array,
      },
      ...(losses ? { losses } : {}),
      ...(gradNorms ? { gradNorms } : {}),
    },
    training: JSON.parse(metadata.training ?? 'null') as unknown,
    ...(notice ? { notice } : {}),
  };
}
