/**
 * A worker: one task queue (cpu or gpu), the workflows bundle and every activity over the artifact store.
 * Several workers on several machines may poll the same queues; Temporal spreads the work.
 */
import { DefaultLogger, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { createActivities } from '../activities/index.js';
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

/** The SDK logs every bundling step at INFO; keep a terminal readable unless LEA_LOG_LEVEL asks for more. */
function installRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (process.env.LEA_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  Runtime.install({ logger: new DefaultLogger(level) });
}

export async function createWorker(settings: InfraSettings, opts: WorkerOptions): Promise<Worker> {
  installRuntime();
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
  if (!until) {
    await Promise.all(workers.map((w) => w.run()));
    return undefined;
  }
  const settled = until.then(
    () => undefined,
    () => undefined,
  );
  await Promise.all(workers.map((w) => w.runUntil(settled)));
  return until;
}
