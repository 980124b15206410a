/**
 * The one place that picks the TensorFlow.js backend. Everything else imports '@tensorflow/tfjs' and
 * calls initCompute() once before its first op.
 *
 * Default order: 'tensorflow-gpu' (@tensorflow/tfjs-node-gpu, only if installed), 'tensorflow' (native
 * CPU, @tensorflow/tfjs-node, built by scripts/setup-tfjs-native.sh), 'wasm', 'cpu' (pure JS).
 * LEA_TF_BACKEND=<one of those> forces a choice; a forced choice that cannot load is a BadInputError.
 * In the default order an installed package that fails to load is skipped with a warning.
 */
import * as tf from '@tensorflow/tfjs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { BadInputError, errorMessage } from '../errors.js';

export const BACKEND_CHOICES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** What a run record stores about the compute it ran on. */
export interface ComputeProvenance {
  /** The LEA_TF_BACKEND-style choice that loaded. */
  choice: BackendChoice;
  /** tfjs backend name: 'tensorflow', 'wasm' or 'cpu'. */
  backend: string;
  /** Where kernels run: 'gpu' only when the native GPU build found a device. */
  device: 'cpu' | 'gpu';
  /** Intra-op threads of the kernels (results are reproducible only at the same count). */
  threads: number;
  /** tfjs package versions, plus 'libtensorflow' for the native backends. */
  versions: Record<string, string>;
  /** TensorFlow variables in effect that change results or speed (native backends only). */
  settings: Record<string, string>;
}

/** libtensorflow variables a run record shows: threads and oneDNN change low bits, the allocator speed. */
const TF_SETTINGS = ['TF_NUM_INTRAOP_THREADS', 'TF_ENABLE_ONEDNN_OPTS', 'TF_CPU_ALLOCATOR_USE_BFC'];

const PACKAGES: Record<BackendChoice, string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

const require = createRequire(import.meta.url);

/** The subset of tfjs-node's NodeJSKernelBackend read here. */
interface NativeBackend {
  binding: { TF_Version: string };
  isUsingGpuDevice: boolean;
}

function isInstalled(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

function nativeThreads(): number {
  // TensorFlow sizes its intra-op pool from this variable, else from the cores this process may use.
  const fromEnv = Number.parseInt(process.env.TF_NUM_INTRAOP_THREADS ?? '', 10);
  return fromEnv > 0 ? fromEnv : os.availableParallelism();
}

/** Loads one backend and makes it current; throws with the reason if it cannot. */
async function load(choice: BackendChoice): Promise<ComputeProvenance> {
  const pkg = PACKAGES[choice];
  const versions: Record<string, string> = { ...(tf.version as Record<string, string>) };
  let threads = 1;
  if (choice === 'tensorflow' || choice === 'tensorflow-gpu') {
    // libtensorflow logs its CPU features at INFO level on load; keep warnings and errors.
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
    // TF's caching (BFC) allocator instead of malloc: large temporaries otherwise come back as fresh
    // pages on every op, which made a paper-size training step ~1.7x slower. Results are unaffected.
    process.env.TF_CPU_ALLOCATOR_USE_BFC ??= 'true';
    // Eigen kernels instead of oneDNN's: in interleaved runs here oneDNN made a training step ~30% slower
    // at the spec's small models (D = 64; ~60 µs more per small matmul) and ~25% slower at D = 1024. The
    // two round differently, so the setting is part of the provenance.
    process.env.TF_ENABLE_ONEDNN_OPTS ??= '0';
    const mod = (await import(pkg)) as { version: Record<string, string> };
    Object.assign(versions, mod.version);
    threads = nativeThreads();
  } else if (choice === 'wasm') {
    await import(pkg);
  }
  const name = choice === 'tensorflow-gpu' ? 'tensorflow' : choice;
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') failed`);
  await tf.ready();
  let device: 'cpu' | 'gpu' = 'cpu';
  if (name === 'tensorflow') {
    const native = tf.backend() as unknown as NativeBackend;
    versions.libtensorflow = native.binding.TF_Version;
    if (native.isUsingGpuDevice) device = 'gpu';
  } else if (name === 'wasm') {
    const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as { getThreadsCount(): number };
    threads = wasm.getThreadsCount();
  }
  versions[pkg] = (require(`${pkg}/package.json`) as { version: string }).version;
  const settings: Record<string, string> = {};
  if (name === 'tensorflow') {
    for (const k of TF_SETTINGS) if (process.env[k] !== undefined) settings[k] = process.env[k] as string;
  }
  return { choice, backend: name, device, threads, versions, settings };
}

function requestedChoice(): BackendChoice | undefined {
  const raw = process.env.LEA_TF_BACKEND?.trim();
  if (!raw) return undefined;
  if (!(BACKEND_CHOICES as readonly string[]).includes(raw)) {
    throw new BadInputError(`LEA_TF_BACKEND=${raw} is not one of ${BACKEND_CHOICES.join(', ')}`);
  }
  return raw as BackendChoice;
}

async function select(): Promise<ComputeProvenance> {
  const requested = requestedChoice();
  if (requested) {
    try {
      return await load(requested);
    } catch (err) {
      throw new BadInputError(
        `LEA_TF_BACKEND=${requested} cannot be loaded (${errorMessage(err)}); ` +
          (requested === 'tensorflow' ? 'run `npm run setup` to build it, or ' : '') +
          'unset LEA_TF_BACKEND to use the default order',
      );
    }
  }
  for (const choice of BACKEND_CHOICES) {
    if (choice !== 'cpu' && !isInstalled(PACKAGES[choice])) continue;
    try {
      return await load(choice);
    } catch (err) {
      console.warn(
        `lea: backend '${choice}' is installed but did not load, skipping it: ${errorMessage(err)}`,
      );
    }
  }
  throw new Error('no TensorFlow.js backend could be loaded');
}

let selected: Promise<ComputeProvenance> | undefined;

/**
 * Selects and initialises the backend on first call (later calls return the same result) and logs the
 * choice once to stderr. The result belongs in every run's provenance.
 */
export function initCompute(): Promise<ComputeProvenance> {
  selected ??= select().then((p) => {
    console.error(
      `lea: compute backend ${p.backend} (${p.choice}, ${p.device}, ${p.threads} threads, ` +
        `tfjs ${p.versions['tfjs-core']}${p.versions.libtensorflow ? `, libtensorflow ${p.versions.libtensorflow}` : ''})`,
    );
    return p;
  });
  return selected;
}
