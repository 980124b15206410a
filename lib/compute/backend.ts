/**
 * The one place that picks the TensorFlow.js backend. Everything else imports '@tensorflow/tfjs' and
 * calls initCompute() once before its first op.
 *
 * Default order: 'tensorflow-gpu' (@tensorflow/tfjs-node-gpu, only if installed), 'tensorflow' (native
 * CPU, @tensorflow/tfjs-node, built by scripts/setup-tfjs-native.sh), 'wasm', 'cpu' (pure JS).
 * LEA_TF_BACKEND=<one of those> forces a choice; a forced choice that cannot load is a BadInputError.
 * In the default order an installed package that fails to load is skipped with a warning.
 *
 * tensorflow-gpu (built by `npm run setup:gpu`) is decided by gpuVerdict(): before loading, from what procfs
 * and /dev show (no NVIDIA driver or no /dev/nvidia<N> node: skipped without loading, one line says why);
 * after loading, from TensorFlow's own device list (the binding's isUsingGpuDevice). It is not loaded on a
 * machine without a GPU because both addons link libtensorflow_cc.so.2 by soname: once the GPU build is in
 * the process, tfjs-node's addon would bind to that same library, so no clean fallback exists after it.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, readdirSync } from 'node:fs';
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
const TF_SETTINGS = [
  'TF_NUM_INTRAOP_THREADS',
  'TF_ENABLE_ONEDNN_OPTS',
  'TF_CPU_ALLOCATOR_USE_BFC',
  'TF_FORCE_GPU_ALLOW_GROWTH',
];

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

/** What this machine shows of NVIDIA GPUs without loading anything: procfs and /dev only. */
export interface GpuProbe {
  /** First line of /proc/driver/nvidia/version; undefined when no NVIDIA kernel driver is loaded. */
  driver?: string;
  /** The /dev/nvidia<N> device nodes this process sees (a container may see the driver but no device). */
  devices: string[];
}

export function probeGpu(): GpuProbe {
  const read = <T>(f: () => T, otherwise: T): T => {
    try {
      return f();
    } catch {
      return otherwise;
    }
  };
  return {
    driver: read(() => readFileSync('/proc/driver/nvidia/version', 'utf8').split('\n')[0]?.trim(), undefined),
    devices: read(
      () =>
        readdirSync('/dev')
          .filter((d) => /^nvidia\d+$/.test(d))
          .map((d) => `/dev/${d}`),
      [],
    ),
  };
}

/**
 * What to do with tensorflow-gpu. 'load': a GPU may be there, load the package and ask TensorFlow; 'use': it
 * lists a GPU; 'skip' (default order, before loading): print `message`, try the next backend; 'cpu' (default
 * order, TensorFlow loaded but lists no GPU): print `message`, run its CPU kernels; 'error' (forced): fail
 * with `reason`.
 */
export interface GpuVerdict {
  action: 'load' | 'use' | 'skip' | 'cpu' | 'error';
  reason?: string;
  message?: string;
}

/**
 * The tensorflow-gpu decision, pure so that it is testable without a GPU. `tfFoundGpu` is undefined before
 * the package is loaded, then whether TensorFlow's device list has a GPU.
 */
export function gpuVerdict(opts: { forced: boolean; probe: GpuProbe; tfFoundGpu?: boolean }): GpuVerdict {
  const { forced, probe, tfFoundGpu } = opts;
  const driver = probe.driver && (/Kernel Module\s+(\S+)/.exec(probe.driver)?.[1] ?? probe.driver);
  let reason: string | undefined;
  let loaded = false;
  if (!probe.driver) reason = 'no NVIDIA driver: /proc/driver/nvidia/version is absent';
  else if (probe.devices.length === 0) reason = `NVIDIA driver ${driver} but no /dev/nvidia<N> device here`;
  else if (tfFoundGpu === undefined) return { action: 'load' };
  else if (tfFoundGpu) return { action: 'use' };
  else {
    loaded = true;
    reason =
      `TensorFlow lists no GPU device, with NVIDIA driver ${driver} and ${probe.devices.join(', ')}; ` +
      'its log above says why';
  }
  if (forced) return { action: 'error', reason: `no GPU: ${reason}` };
  return loaded
    ? {
        action: 'cpu',
        reason,
        message: `lea: tensorflow-gpu loaded but found no GPU (${reason}); using the CPU`,
      }
    : {
        action: 'skip',
        reason,
        message: `lea: tensorflow-gpu is installed but found no GPU (${reason}); using the CPU`,
      };
}

/** tensorflow-gpu declined: in the default order the next backend is tried after `message` is printed. */
class NoGpuError extends Error {
  constructor(readonly verdict: GpuVerdict) {
    super(verdict.reason);
  }
}

function nativeThreads(): number {
  // TensorFlow sizes its intra-op pool from this variable, else from the cores this process may use.
  const fromEnv = Number.parseInt(process.env.TF_NUM_INTRAOP_THREADS ?? '', 10);
  return fromEnv > 0 ? fromEnv : os.availableParallelism();
}

/** Loads one backend and makes it current; throws with the reason if it cannot. */
async function load(choice: BackendChoice, forced: boolean): Promise<ComputeProvenance> {
  const pkg = PACKAGES[choice];
  const versions: Record<string, string> = { ...(tf.version as Record<string, string>) };
  let threads = 1;
  const probe = choice === 'tensorflow-gpu' ? probeGpu() : undefined;
  if (probe) {
    if (!isInstalled(pkg)) throw new Error(`${pkg} is not installed`);
    const verdict = gpuVerdict({ forced, probe });
    if (verdict.action !== 'load') throw new NoGpuError(verdict);
    // TensorFlow otherwise reserves nearly all GPU memory up front, whatever a model needs.
    process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
  }
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
    if (probe) {
      const verdict = gpuVerdict({ forced, probe, tfFoundGpu: native.isUsingGpuDevice });
      if (verdict.action === 'error') throw new NoGpuError(verdict);
      if (verdict.action === 'cpu') console.warn(verdict.message);
    }
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
      return await load(requested, true);
    } catch (err) {
      const setup =
        requested === 'tensorflow'
          ? 'run `npm run setup` to build it, or '
          : requested === 'tensorflow-gpu' && !(err instanceof NoGpuError)
            ? 'run `npm run setup:gpu` to build it, or '
            : '';
      throw new BadInputError(
        `LEA_TF_BACKEND=${requested} cannot be loaded (${errorMessage(err)}); ` +
          setup +
          'unset LEA_TF_BACKEND to use the default order',
      );
    }
  }
  for (const choice of BACKEND_CHOICES) {
    if (choice !== 'cpu' && !isInstalled(PACKAGES[choice])) continue;
    try {
      return await load(choice, false);
    } catch (err) {
      if (err instanceof NoGpuError) {
        console.warn(err.verdict.message);
        continue;
      }
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
