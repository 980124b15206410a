/** An in-process worker on private task queues, for tests that run workflows against the real servers. */
import { Client } from '@temporalio/client';
import { randomBytes } from 'node:crypto';
import { loadInfraSettings, taskQueue, type InfraSettings } from '../../lib/config/infra.js';
import { connectClient } from '../../workers/temporal-connection.js';
import { runWorkers } from '../../workers/worker.js';

export interface TestWorkers {
  settings: InfraSettings;
  client: Client;
  queues: { cpu: string; gpu: string };
  /** Runs fn while a cpu and a gpu worker poll the private queues. */
  run<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export async function testWorkers(): Promise<TestWorkers> {
  const settings = {
    ...loadInfraSettings(process.env),
    taskQueuePrefix: `test-${randomBytes(4).toString('hex')}`,
  };
  const client = await connectClient(settings.temporal);
  const queues = { cpu: taskQueue(settings, 'cpu'), gpu: taskQueue(settings, 'gpu') };
  return {
    settings,
    client,
    queues,
    async run<T>(fn: () => Promise<T>): Promise<T> {
      return (await runWorkers(settings, ['cpu', 'gpu'], fn())) as T;
    },
    close: () => client.connection.close(),
  };
}
