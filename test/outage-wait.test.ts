/** Waiting out a dependency's outage (lib/storage/s3.ts outlastOutages): what waits, what fails at once. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BadInputError, ServerUnreachableError } from '../lib/errors.js';
import { outlastOutages, type OutageWait } from '../lib/storage/s3.js';

const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8333'), { code: 'ECONNREFUSED' });

/** A dependency that is down for the first `downProbes` probes; records the waits reported. */
function dependency(downProbes: number, budgetMs = 60_000) {
  const waits: (string | undefined)[] = [];
  let probes = 0;
  const w: OutageWait = {
    budgetMs,
    probe: async () => {
      if (probes++ < downProbes) throw new ServerUnreachableError('S3 endpoint did not answer');
    },
    onWait: (since) => waits.push(since?.toISOString()),
  };
  return { w, waits, probes: () => probes };
}

test('an operation failing while its dependency is down runs again once it answers, and reports the wait', async () => {
  const dep = dependency(2);
  let calls = 0;
  const out = await outlastOutages(async () => {
    if (calls++ === 0) throw new Error('stage failed', { cause: refused() });
    return 'done';
  }, dep.w);
  assert.equal(out, 'done');
  assert.equal(calls, 2);
  assert.equal(dep.waits.length, 2);
  assert.match(dep.waits[0]!, /^\d{4}-/);
  assert.equal(dep.waits[1], undefined);
});

test("a failure while the dependency answers, and bad input, are the operation's own: thrown at once", async () => {
  const up = dependency(0);
  await assert.rejects(
    outlastOutages(async () => {
      throw refused();
    }, up.w),
    /ECONNREFUSED/,
  );
  assert.deepEqual(up.waits, []);
  await assert.rejects(
    outlastOutages(async () => {
      throw new BadInputError('bad config');
    }, up.w),
    BadInputError,
  );
  assert.equal(up.probes(), 1, 'bad input is not even probed');
});

test('an outage longer than the budget fails, naming the wait and the cause', async () => {
  const down = dependency(Infinity, 1500);
  await assert.rejects(
    outlastOutages(async () => {
      throw refused();
    }, down.w),
    (err: Error) =>
      err instanceof ServerUnreachableError && /gave up after waiting .*ECONNREFUSED/.test(err.message),
  );
});
