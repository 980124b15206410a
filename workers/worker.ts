/**
 * A worker: one task queue (cpu or gpu), the workflows bundle and every activity over the artifact store.
 * Several workers on several machines may poll the same queues; Temporal spreads the work.
 */
import { DefaultLogger, Runtime, Worker, type LogEntry, type LogLevel } from '@temporalio/worker';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { createActivities } from '../activities/index.js';
import { initCompute, type ComputeProvenance } from '../lib/compute/backend.js';
import { taskQueue, type InfraSettings } from '../lib/config/infra.js';
import { ArtifactStore } from '../lib/storage/artifact-store.js';
import { connectClient, connectWorker } from './temporal-connection.js';
import type { Client } from '@temporalio/client';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerOptions {
  queue: 'cpu' | 'gpu';
  maxConcurrentActivities?: number;
}

let runtimeInstalled = false;

/**
 * Where the SDK's log goes (its warnings carry stack traces and task tokens, core's included): always appended
 * to LEA_HOME/logs/worker.log, and on stderr only when `console` is set (`lea worker`, `lea run --verbose`), so
 * a failing run under `lea run --wait` prints one line per error. Level: LEA_LOG_LEVEL (default WARN; the SDK
 * logs every bundling step at INFO). Once per process, before the first worker; later calls change nothing.
 */
export function installWorkerLogging(settings: InfraSettings, opts: { console: boolean }): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.LEA_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  mkdirSync(join(settings.home, 'logs'), { recursive: true });
  const file = createWriteStream(join(settings.home, 'logs', 'worker.log'), { flags: 'a' });
  const write = (entry: LogEntry) => {
    const at = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
    const meta = entry.meta === undefined ? '' : ` ${inspect(entry.meta, { depth: 6 })}`;
    const line = `${at} [${entry.level}] ${entry.message}${meta}\n`;
    file.write(line);
    if (opts.console) process.stderr.write(line);
  };
  Runtime.install({
    logger: new DefaultLogger(level, write),
    telemetryOptions: { logging: { forward: {} } },
  });
}

/**
 * Picks the compute backend before a worker polls, so its one line (backend, device, threads) opens the
 * worker's output, and warns once when a worker polling the gpu queue has no GPU.
 */
export async function announceCompute(queues: WorkerOptions['queue'][]): Promise<ComputeProvenance> {
  const compute = await initCompute();
  if (queues.includes('gpu') && compute.device !== 'gpu') {
    console.warn('lea: this worker polls the gpu queue but has no GPU: training will run on the CPU');
  }
  return compute;
}

export async function createWorker(settings: InfraSettings, opts: WorkerOptions): Promise<Worker> {
  installWorkerLogging(settings, { console: true });
  const connection = await connectWorker(settings.temporal);
  const store = ArtifactStore.fromSettings(settings.s3);
  let client: Promise<Client> | undefined;
  const lazyClient = () => (client ??= connectClient(settings.temporal));
  return Worker.create({
    connection,
    namespace: settings.temporal.namespace,
    taskQueue: taskQueue(settings, opts.queue),
    workflowsPath,
    activities: createActivities(store, settings, lazyClient),
    // Training saturates a machine (or a GPU): one activity at a time there; light cpu stages may overlap.
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? (opts.queue === 'gpu' ? 1 : 2),
    // Heartbeat details carry the step and loss `lea status` shows; the SDK's default throttle (0.8 of the
    // heartbeat timeout, at most 60 s) would leave that a minute stale.
    maxHeartbeatThrottleInterval: '5 seconds',
  });
}

/**
 * Runs one worker per queue in this process: until `until` settles (then returns its result), or until
 * SIGINT/SIGTERM when it is absent. A single machine polls both queues; a fleet splits them.
 */
export async function runWorkers<T>(
  settings: InfraSettings,
  queues: WorkerOptions['queue'][],
  until?: Promise<T>,
  maxConcurrentActivities?: number,
): Promise<T | undefined> {
  const workers = await Promise.all(
    queues.map((queue) => createWorker(settings, { queue, maxConcurrentActivities })),
  );
  // Each worker's native connection is closed once it has stopped: the runtime, whose log forwarding keeps the
  // event loop alive, shuts down only when no connection is left.
  const close = () => Promise.all(workers.map((w) => w.connection?.close()));
  if (!until) {
    await Promise.all(workers.map((w) => w.run())).finally(close);
    return undefined;
  }
  const settled = until.then(
    () => undefined,
    () => undefined,
  );
  await Promise.all(workers.map((w) => w.runUntil(settled))).finally(close);
  return until;
}
