/** Whether any worker polls a task queue (Temporal's DescribeTaskQueue), and the command that starts one. */
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { TaskQueueType } = proto.temporal.api.enums.v1;

/**
 * A live worker long-polls each of its queues about once a minute (the poll's start is its `lastAccessTime`);
 * a killed one stays listed by the server for minutes, so only a recent poll counts.
 */
export const RECENT_POLL_MS = 90_000;

export type TaskKind = 'workflow' | 'activity';

/** True when some worker polled `queue` for `kind` tasks recently. A server that will not say counts as yes. */
export async function workerPolls(
  client: Client,
  queue: string,
  kind: TaskKind = 'workflow',
): Promise<boolean> {
  try {
    const res = await client.workflowService.describeTaskQueue({
      namespace: client.options.namespace,
      taskQueue: { name: queue },
      taskQueueType:
        kind === 'workflow' ? TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    const recent = Date.now() - RECENT_POLL_MS;
    return (res.pollers ?? []).some((p) => Number(p.lastAccessTime?.seconds ?? 0) * 1000 > recent);
  } catch {
    return true; // e.g. no permission to describe queues: do not claim that nobody polls
  }
}

/** One answer per queue and kind for the duration of one record (several stages share a queue). */
export function pollerCache(client: Client): (queue: string, kind: TaskKind) => Promise<boolean> {
  const seen = new Map<string, Promise<boolean>>();
  return (queue, kind) => {
    const key = `${kind}:${queue}`;
    let answer = seen.get(key);
    if (!answer) seen.set(key, (answer = workerPolls(client, queue, kind)));
    return answer;
  };
}

/**
 * The command that starts a worker for a task queue named `<prefix>-cpu` or `<prefix>-gpu` (lib/config/infra.ts
 * taskQueue); undefined for a queue of another name.
 */
export function workerCommand(queue: string): string | undefined {
  const m = /^(.+)-(cpu|gpu)$/.exec(queue);
  if (!m) return undefined;
  const prefix = m[1] === 'lea' ? '' : `LEA_TASK_QUEUE_PREFIX=${m[1]} `;
  return `${prefix}npx lea worker --queue ${m[2]}`;
}

/** "no worker polls 'lea-gpu': start one with `npx lea worker --queue gpu`" */
export function noWorkerText(queue: string): string {
  const command = workerCommand(queue);
  return `no worker polls '${queue}'${command ? `: start one with \`${command}\`` : ''}`;
}
