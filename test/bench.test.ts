/**
 * `npm run bench -- --only ridge` works from a checkout with nothing installed by hand: the benchmark installs
 * the scikit-learn oracle it compares against (scripts/setup.sh, idempotent) and prints its figures.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from './helpers/lea.js';

test('npm run bench -- --only ridge --rounds 1 installs what it needs and prints the ridge figures', () => {
  const r = spawnSync('npm', ['run', 'bench', '--', '--only', 'ridge', '--rounds', '1'], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 600_000,
  });
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr.slice(-3000)}`);
  assert.match(r.stdout, /scikit-learn/i);
  assert.match(r.stdout, /GOD|1200/);
});
