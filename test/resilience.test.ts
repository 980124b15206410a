/**
 * What the pipeline promises when things break, on the real servers: a worker killed with SIGKILL mid-training
 * (the run finishes on a new worker, losing at most one checkpoint interval, with bit-identical weights), the
 * Temporal server restarted mid-run (same SQLite file), S3 stopped for 90 s mid-training (waited out, no
 * attempt spent), and two workers serving two concurrent runs that need the same stages (each computed once).
 */
import { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { formatRecord, runRecord } from '../cli/run-records.js';
import { loadInfraSettings } from '../lib/config/infra.js';
import type { RunRecord, StageRecord } from '../lib/pipeline/run-record.js';
import { connectClient } from '../workers/temporal-connection.js';
import type { ReproductionResult } from '../workflows/reproduction.js';
import { embeddedEnv, repoRoot, runLea } from './helpers/lea.js';
import { readEvents } from './helpers/oracle.js';
import { testStore } from './helpers/store.js';

const TEN_MINUTES = 600_000;
const settings = loadInfraSettings(process.env);
const store = testStore();
let client: Client;
before(async () => (client = await connectClient(settings.temporal)));
after(async () => {
  await client.connection.close();
  store.s3.destroy();
});

/** A private set of task queues, so these runs only reach the workers this test starts. */
function queueEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LEA_TASK_QUEUE_PREFIX: `res-${randomBytes(4).toString('hex')}` };
}

function startWorker(env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['bin/lea.js', 'worker'], { cwd: repoRoot, env, stdio: 'ignore' });
}

function startRun(env: NodeJS.ProcessEnv, args: string[]): string {
  const r = runLea(['run', 'configs/smoke.yaml', '--json', ...args], env);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { runId: string }).runId;
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  ms = TEN_MINUTES,
  lastSeen: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    // Server hiccups are retried; a failed assertion inside the probe ends the wait.
    const v = await probe().catch((err: unknown) => {
      if (err instanceof assert.AssertionError) throw err;
      return undefined;
    });
    if (v !== undefined) return v;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}${lastSeen()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Waits until the run's fmri-ae stage is past step `min` (the run still running); returns the step seen. */
const fmriAePast = (runId: string, min: number) =>
  waitFor(`fmri-ae to pass step ${min}`, async () => {
    const r = await runRecord(client, runId);
    assert.equal(r.status, 'running', `the run ended before fmri-ae passed step ${min}`);
    const s = r.stages.find((x) => x.name === 'fmri-ae');
    return s?.step !== undefined && s.step > min ? s.step : undefined;
  });

/** Waits until the run is no longer running; returns its record (a timeout shows the last one seen). */
function finished(runId: string, ms?: number): Promise<RunRecord> {
  let last: RunRecord | undefined;
  return waitFor(
    `run ${runId} to finish`,
    async () => {
      last = await runRecord(client, runId);
      return last.status === 'running' ? undefined : last;
    },
    ms,
    () => `; last seen: ${last ? formatRecord(last) : 'no record'}`,
  );
}

const result = async (runId: string) =>
  (await client.workflow.getHandle(runId).result()) as ReproductionResult;
const stage = (r: ReproductionResult, name: string) => r.stages.find((s) => s.name === name) as StageRecord;

async function modelSha(r: ReproductionResult, name: string): Promise<string> {
  const m = await store.require(stage(r, name).output!);
  return m.files.find((f) => f.path === 'model.safetensors')!.sha256;
}

test(
  'a worker killed mid-training: a new worker finishes, at most one checkpoint interval is recomputed, weights are bit-identical',
  { timeout: TEN_MINUTES },
  async () => {
    const env = queueEnv();
    const interval = 50;
    const train = [
      '--set',
      `training.fmriAe.iterations=${400 + randomInt(100)}`,
      '--set',
      `training.fmriAe.checkpointEvery=${interval}`,
      '--set',
      'runtime.heartbeatSeconds=10',
    ];
    let worker = startWorker(env);
    try {
      const runId = startRun(env, train);
      const killStep = await fmriAePast(runId, 2 * interval + 9); // 2 checkpoints behind it
      worker.kill('SIGKILL');
      await new Promise((r) => worker.once('exit', r));
      worker = startWorker(env);
      const crashed = await result(runId);
      const ae = stage(crashed, 'fmri-ae');
      const resumed = Number(ae.summary.resumedFromStep);
      console.log(`killed at step >= ${killStep}, resumed from checkpoint step ${resumed}`);
      assert.ok(resumed > 0, 'the new attempt resumed from a checkpoint');
      assert.ok(
        killStep - resumed <= interval,
        `recomputed ${killStep - resumed} steps > one interval (${interval})`,
      );
      // The record lists both attempts, and the loss history covers every step (the checkpoint carried it).
      const iterations = Number(train[1]!.split('=')[1]);
      assert.equal(ae.attempts?.length, 2, JSON.stringify(ae.attempts));
      assert.match(ae.attempts![0]!.ended, /^(lost|failed)/);
      assert.equal(ae.attempts![1]!.ended, 'completed');
      assert.equal(ae.attempts![1]!.resumedFromStep, resumed);
      assert.notEqual(ae.attempts![0]!.worker, ae.attempts![1]!.worker);
      const curve = JSON.parse((await store.readBytes(ae.output!, 'losses.json')).toString()) as {
        step: number;
        loss: number;
      }[];
      assert.deepEqual(
        curve.map((p) => p.step),
        Array.from({ length: iterations }, (_, i) => i + 1),
      );
      // TensorBoard reads the same curve from the stage's event file: every step once, across the resume.
      const logdir = mkdtempSync(join(tmpdir(), 'lea-tb-'));
      const events = (await store.require(ae.output!)).files.filter((f) => f.path.startsWith('tensorboard/'));
      assert.equal(events.length, 1);
      await store.downloadFile(ae.output!, events[0]!.path, join(logdir, basename(events[0]!.path)));
      const read = readEvents(logdir);
      assert.deepEqual(
        read['train/loss']!.map(([step, value]) => [step, value]),
        curve.map((p) => [p.step, Math.fround(p.loss)]),
      );
      assert.deepEqual(
        read['train/grad_norm']!.map(([step]) => step),
        curve.map((p) => p.step),
        'the checkpoint carried the gradient norms of the steps before the resume',
      );

      // Read before the forced run replaces the cache entry (and with it this reference's manifest).
      const crashedSha = await modelSha(crashed, 'fmri-ae');
      const straight = await result(startRun(env, [...train, '--force', 'fmri-ae']));
      assert.equal(stage(straight, 'fmri-ae').summary.resumedFromStep, 0);
      assert.equal(await modelSha(straight, 'fmri-ae'), crashedSha);
    } finally {
      worker.kill('SIGKILL');
    }
  },
);

test(
  'the Temporal server stopped and restarted mid-run (same SQLite file): the run completes',
  { timeout: TEN_MINUTES },
  async () => {
    const env = queueEnv();
    const worker = startWorker(env);
    try {
      // Long enough (~1 min) that the restart lands while fmri-ae trains.
      const runId = startRun(env, ['--set', `training.fmriAe.iterations=${1500 + randomInt(100)}`]);
      await fmriAePast(runId, 20);
      await stopServer('temporal');
      await new Promise((r) => setTimeout(r, 2000));
      const up = runLea(['dev', 'up'], embeddedEnv());
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stdout, /temporal: started/);
      assert.equal((await finished(runId)).status, 'completed');
    } finally {
      worker.kill('SIGKILL');
    }
  },
);

/** Stops a server `lea dev up` started (by its pid file) and waits until the process is gone. */
async function stopServer(name: 'temporal' | 's3'): Promise<void> {
  const pid = Number(readFileSync(join(settings.home, 'run', `${name}.pid`), 'utf8'));
  process.kill(pid, 'SIGTERM');
  await waitFor(`${name} to stop`, async () => {
    try {
      process.kill(pid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
}

test(
  'S3 stopped for 90 s mid-training: the stage waits (status says so) without spending attempts, and the run completes with the metrics of an uninterrupted run',
  { timeout: 2 * TEN_MINUTES },
  async () => {
    const env = queueEnv();
    const train = ['--set', `training.fmriAe.iterations=${1500 + randomInt(100)}`];
    const worker = startWorker(env);
    try {
      const runId = startRun(env, train);
      await fmriAePast(runId, 20);
      const stopped = Date.now();
      await stopServer('s3');
      const waiting = await waitFor('a stage to report waiting for S3', async () => {
        const r = await runRecord(client, runId);
        assert.equal(r.status, 'running', `the run ended during the S3 outage: ${formatRecord(r)}`);
        return r.stages.find((s) => s.waitingFor === 's3');
      });
      assert.match(formatRecord(await runRecord(client, runId)), /waiting for S3 \(since \d{4}-/);
      await new Promise((r) => setTimeout(r, Math.max(0, stopped + 90_000 - Date.now())));
      const up = runLea(['dev', 'up'], embeddedEnv());
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stdout, /s3: started/);
      console.log(`S3 was down for ${((Date.now() - stopped) / 1000).toFixed(0)} s; ${waiting.name} waited`);
      const done = await finished(runId);
      assert.equal(done.status, 'completed', formatRecord(done));
      const outaged = await result(runId);
      for (const s of outaged.stages.filter((x) => x.status === 'completed'))
        assert.equal(await attempts(s), 1, `${s.name} spent an attempt on the outage`);
      // Read before the forced run replaces the cache entry (and with it this reference's manifest).
      const outagedSha = await modelSha(outaged, 'fmri-ae');
      const straight = await result(startRun(env, [...train, '--force', 'fmri-ae']));
      assert.equal(await modelSha(straight, 'fmri-ae'), outagedSha);
      assert.deepEqual(straight.metrics, outaged.metrics);
    } finally {
      worker.kill('SIGKILL');
    }
  },
);

/** Attempts of the stage activity behind a stage record (from its child workflow's history). */
async function attempts(s: StageRecord): Promise<number> {
  const history = await client.workflow.getHandle(s.childWorkflowId!).fetchHistory();
  const started = history.events?.find((e) => e.activityTaskStartedEventAttributes);
  return started?.activityTaskStartedEventAttributes?.attempt ?? 0;
}

test(
  'a cancelled run stops training at once, freeing the worker; training longer than the heartbeat timeout between checkpoints needs one attempt',
  { timeout: TEN_MINUTES },
  async () => {
    const env = queueEnv();
    const worker = startWorker(env);
    try {
      const long = startRun(env, ['--set', `training.fmriAe.iterations=${100_000 + randomInt(1000)}`]);
      await fmriAePast(long, 20);
      const cancel = runLea(['cancel', long], env);
      assert.equal(cancel.code, 0, cancel.stderr);
      // The worker trains one stage at a time, so this run's fmri-ae starts only once the cancelled one has
      // stopped. It trains for longer than its 5 s heartbeat timeout with no checkpoint in between.
      const next = startRun(env, [
        '--set',
        `training.fmriAe.iterations=${1000 + randomInt(100)}`,
        '--set',
        'training.fmriAe.checkpointEvery=100000',
        '--set',
        'runtime.heartbeatSeconds=5',
      ]);
      const done = await finished(next, 240_000);
      assert.equal(done.status, 'completed', JSON.stringify(done.stages));
      assert.equal((await runRecord(client, long)).status, 'cancelled');
      const ae = stage(await result(next), 'fmri-ae');
      assert.equal(ae.status, 'completed');
      assert.equal(await attempts(ae), 1, 'fmri-ae was retried');
    } finally {
      worker.kill('SIGKILL');
    }
  },
);

test(
  'two workers, two concurrent runs needing the same stages: both complete, each stage computed once',
  { timeout: TEN_MINUTES },
  async () => {
    const env = queueEnv();
    const workers = [startWorker(env), startWorker(env)];
    try {
      const seed = `data.source.seed=${randomInt(1000, 1e9)}`;
      const a = startRun(env, ['--set', seed]);
      const b = startRun(env, ['--set', seed, '--set', 'training.maskgit.lr=0.002']);
      // Bounded, so a stuck run fails with its stages' states rather than at the test's timeout.
      await Promise.all([finished(a, 360_000), finished(b, 360_000)]);
      const [ra, rb] = await Promise.all([result(a), result(b)]);
      const differ = new Set(['maskgit', 'decode', 'metrics']); // run b's MaskGIT learning rate
      for (const s of ra.stages.filter((x) => !differ.has(x.name))) {
        const other = stage(rb, s.name);
        assert.equal(other.output?.key, s.output?.key, `${s.name}: both runs use the same artifact`);
        const computed = [s, other].filter((x) => x.status === 'completed').length;
        assert.equal(computed, 1, `${s.name} was computed ${computed} times (${s.status}/${other.status})`);
      }
      assert.notEqual(stage(ra, 'maskgit').output?.key, stage(rb, 'maskgit').output?.key);
    } finally {
      for (const w of workers) w.kill('SIGKILL');
    }
  },
);
