/**
 * `lea gc` on the real servers, in a store prefix and state folder of its own: it removes finished attempts'
 * scratch folders and completed stages' older checkpoints (keeping blobs other artifacts use), and keeps every
 * checkpoint a running or resumable run may read.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadInfraSettings } from '../lib/config/infra.js';
import { OWNER_FILE } from '../lib/pipeline/gc.js';
import { checkpointName } from '../lib/train/checkpoint.js';
import { ArtifactStore } from '../lib/storage/artifact-store.js';
import { connectClient } from '../workers/temporal-connection.js';
import { runLea } from './helpers/lea.js';

const home = mkdtempSync(join(tmpdir(), 'lea-gc-'));
const env = { ...process.env, LEA_HOME: home, LEA_S3_PREFIX: `test/gc-${randomBytes(4).toString('hex')}/` };
const settings = loadInfraSettings(env);
const store = ArtifactStore.fromSettings(settings.s3);
after(() => {
  store.s3.destroy();
  rmSync(home, { recursive: true, force: true });
});

/** Checkpoint artifacts at the given steps under a prefix; each holds a file of its own and `shared`. */
async function checkpoints(prefix: string, steps: number[], shared: Buffer): Promise<string[]> {
  const keys = steps.map((s) => `${prefix}/${checkpointName(s)}`);
  for (const key of keys) {
    await store.put(key, [
      { path: 'own.bin', bytes: Buffer.from(`${key} ${randomBytes(8).toString('hex')}`) },
      { path: 'shared.bin', bytes: shared },
    ]);
  }
  return keys;
}

function scratch(run: string, owner?: number): string {
  const dir = join(home, 'work', run, 'fmri-ae-attempt1');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(1000));
  if (owner !== undefined) writeFileSync(join(dir, OWNER_FILE), `${owner}\n`);
  return dir;
}

const gc = (...args: string[]) => {
  const r = runLea(['gc', '--json', ...args], env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { scratch: { removed: string[] }; checkpoints: { removed: string[] } };
};

test('lea gc removes what no run needs and keeps what a running or resumable run needs', async () => {
  const client = await connectClient(settings.temporal);
  // a run that stays running (no worker polls its queue), for a forced stage's checkpoints
  const running = `gc-running-${randomBytes(4).toString('hex')}`;
  await client.workflow.start('reproductionWorkflow', {
    workflowId: running,
    taskQueue: `${running}-q`,
    args: [],
  });
  try {
    const shared = randomBytes(64);
    const k = randomBytes(8).toString('hex');
    // completed stage: its output exists and shares a blob with every checkpoint
    const done = await checkpoints(`checkpoints/fake/${k}-done`, [10, 20, 30], shared);
    const output = await store.put(`cache/fake/${k}-done`, [{ path: 'shared.bin', bytes: shared }]);
    // a stage no run completed (a failed or cancelled run resumes from these)
    const resumable = await checkpoints(`checkpoints/fake/${k}-open`, [10, 20], randomBytes(64));
    // a forced recomputation by a running run, and one by a run Temporal does not know
    const forcedRunning = await checkpoints(`checkpoints/fake/${k}-done/forced-${running}`, [10, 20], shared);
    const forcedGone = await checkpoints(`checkpoints/fake/${k}-done/forced-no-such-run`, [10, 20], shared);
    const dead = spawnSync('true').pid!; // a worker process that has exited
    const finished = [scratch('run-a', dead), scratch('run-b')]; // run-b: no owner file, unknown run
    const live = scratch('run-c', process.pid);
    const ownBlob = (await store.manifest(done[0]!))!.files.find((f) => f.path === 'own.bin')!;

    const dry = gc('--dry-run', '--keep', '1');
    const expected = [...done.slice(0, 2), forcedGone[0]!].sort();
    assert.deepEqual(dry.checkpoints.removed.sort(), expected);
    assert.deepEqual(dry.scratch.removed.sort(), finished.sort());
    for (const key of [...done, ...forcedGone]) assert.ok(await store.exists(key), `dry run removed ${key}`);
    assert.ok(existsSync(finished[0]!));

    const real = gc('--keep', '1');
    assert.deepEqual(real.checkpoints.removed.sort(), expected);
    for (const key of expected) assert.equal(await store.exists(key), false, `${key} is still there`);
    for (const key of [done[2]!, ...resumable, ...forcedRunning, forcedGone[1]!])
      assert.ok(await store.exists(key), `${key} was removed`);
    assert.equal(
      await store.hasBlob(ownBlob.sha256, ownBlob.size),
      false,
      'a removed checkpoint left its own blob',
    );
    assert.deepEqual(
      await store.readBytes(output, 'shared.bin'),
      shared,
      'a blob other artifacts use was removed',
    );
    for (const dir of finished) assert.equal(existsSync(dir), false, `${dir} is still there`);
    assert.ok(existsSync(live), "a live worker's folder was removed");

    // once the run has ended without being resumable, its forced checkpoints are old ones like any other
    await client.workflow.getHandle(running).terminate('test');
    assert.deepEqual(gc('--keep', '1').checkpoints.removed, [forcedRunning[0]!]);
  } finally {
    await client.workflow
      .getHandle(running)
      .terminate('test')
      .catch(() => undefined);
    await client.connection.close();
  }
});
