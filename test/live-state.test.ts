/**
 * What `lea` says about a run while it is under way, on the real servers: a run no worker polls for (`lea run`
 * warns, `lea status` answers at once with the queue and the command that starts a worker, `lea cancel` ends
 * it), and a stage whose worker stopped heartbeating (`stale`, with the age of its last heartbeat).
 */
import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { after, before, test } from 'node:test';
import { formatRecord, runRecord } from '../cli/run-records.js';
import { loadInfraSettings } from '../lib/config/infra.js';
import { DEFAULT_RUNTIME } from '../lib/pipeline/plan.js';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { connectClient } from '../workers/temporal-connection.js';
import { explain, repoRoot, runLea } from './helpers/lea.js';

const settings = loadInfraSettings(process.env);
let client: Client;
before(async () => (client = await connectClient(settings.temporal)));
after(() => client.connection.close());

/** Private task queues, so only the workers a test starts (if any) poll them. */
function queueEnv(): { env: NodeJS.ProcessEnv; prefix: string } {
  const prefix = `live-${randomBytes(4).toString('hex')}`;
  return { env: { ...process.env, LEA_TASK_QUEUE_PREFIX: prefix }, prefix };
}

test('with no worker: lea run warns, lea status answers at once naming the queue and the command, lea cancel ends the run', async () => {
  const { env, prefix } = queueEnv();
  const run = runLea(['run', 'configs/smoke.yaml', '--json'], env);
  assert.equal(run.code, 0, explain(run));
  const { runId } = JSON.parse(run.stdout) as { runId: string };
  for (const kind of ['cpu', 'gpu'])
    assert.match(
      run.stderr,
      new RegExp(
        `warning: no worker polls '${prefix}-${kind}': start one with \`LEA_TASK_QUEUE_PREFIX=${prefix} npx lea worker --queue ${kind}\``,
      ),
    );

  const started = Date.now();
  const status = runLea(['status', runId, '--json'], env);
  const seconds = (Date.now() - started) / 1000;
  assert.equal(status.code, 0, explain(status));
  const record = JSON.parse(status.stdout) as RunRecord;
  assert.ok(seconds < 15, `lea status took ${seconds.toFixed(1)} s`);
  assert.equal(record.status, 'running');
  assert.deepEqual(record.noWorker, {
    taskQueue: `${prefix}-cpu`,
    startWorker: `LEA_TASK_QUEUE_PREFIX=${prefix} npx lea worker --queue cpu`,
  });
  assert.ok(record.stages.length > 5, "the plan's stages are listed");
  assert.ok(record.stages.every((s) => s.status === 'pending'));
  assert.match(
    runLea(['status', runId], env).stdout,
    /no worker polls '.*-cpu', so nothing advances this run/,
  );

  const cancel = runLea(['cancel', runId], env);
  assert.equal(cancel.code, 0, explain(cancel));
  assert.match(cancel.stdout, /terminated: .*no worker polls/);
  assert.equal((await runRecord(client, runId)).status, 'terminated');
  const again = runLea(['cancel', runId], env);
  assert.equal(again.code, 2, explain(again));
  assert.match(again.stderr, /is terminated: there is nothing to cancel/);
});

function startWorker(env: NodeJS.ProcessEnv, queue: 'cpu' | 'gpu'): ChildProcess {
  return spawn(process.execPath, ['bin/lea.js', 'worker', '--queue', queue], {
    cwd: repoRoot,
    env,
    stdio: 'ignore',
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    const v = await probe().catch((err: unknown) => void (last = err));
    if (v !== undefined) return v;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

test(
  'a stage whose worker stops heartbeating shows as stale with the age of its last heartbeat',
  { timeout: 600_000 },
  async () => {
    const { env } = queueEnv();
    // The run's workflow on a cpu worker, its training on a gpu worker that the test stops (SIGSTOP).
    const cpu = startWorker(env, 'cpu');
    const gpu = startWorker(env, 'gpu');
    let runId: string | undefined;
    try {
      // The default: stale after twice the stage runner's 10 s interval, retried after 30 s.
      const heartbeatSeconds = DEFAULT_RUNTIME.heartbeatSeconds;
      const staleAfter = (2 * heartbeatSeconds) / 3;
      const run = runLea(
        [
          'run',
          'configs/smoke.yaml',
          '--json',
          '--set',
          `training.fmriAe.iterations=${100_000 + randomInt(1000)}`,
        ],
        env,
      );
      assert.equal(run.code, 0, explain(run));
      runId = (JSON.parse(run.stdout) as { runId: string }).runId;
      const id = runId;
      const aeRow = async () => (await runRecord(client, id)).stages.find((s) => s.name === 'fmri-ae');
      await waitFor(
        'fmri-ae to train',
        async () => {
          const s = await aeRow();
          return s?.status === 'running' && (s.step ?? 0) > 5 ? s : undefined;
        },
        300_000,
      );
      const fresh = await aeRow();
      assert.ok((fresh?.heartbeatAgeSeconds ?? 99) < staleAfter, JSON.stringify(fresh));
      gpu.kill('SIGSTOP');
      const stopped = Date.now();
      let last: RunRecord | undefined;
      const stale = await waitFor(
        'fmri-ae to show as stale',
        async () => {
          last = await runRecord(client, id);
          const s = last.stages.find((x) => x.name === 'fmri-ae');
          return s?.status === 'stale' ? s : undefined;
        },
        heartbeatSeconds * 1000,
      ).catch((err: Error) => assert.fail(`${err.message}; last seen: ${last ? formatRecord(last) : '-'}`));
      const waited = (Date.now() - stopped) / 1000;
      assert.ok(waited <= heartbeatSeconds, `stale only after ${waited} s`);
      assert.ok((stale.heartbeatAgeSeconds ?? 0) > staleAfter, JSON.stringify(stale));
      assert.ok(stale.step !== undefined && stale.totalSteps !== undefined, 'its last progress is kept');
      const text = runLea(['status', id], env);
      assert.match(text.stdout, /fmri-ae +stale.*\n +last heartbeat \d+s ago/, text.stdout);
    } finally {
      gpu.kill('SIGCONT');
      if (runId)
        await client.workflow
          .getHandle(runId)
          .terminate('test done')
          .catch(() => undefined);
      cpu.kill('SIGKILL');
      gpu.kill('SIGKILL');
    }
  },
);
