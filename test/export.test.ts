/**
 * `lea export --ro-crate` end to end: the smoke run through the real servers, exported with its small files and
 * read back by the `rocrate` Python package, holds every stage of the record as an action, the sha256 of every
 * file each stage read (as its output's manifest lists them) and the metrics with their definitions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import type { ArtifactRef } from '../lib/storage/artifact-store.js';
import { explain, runLea } from './helpers/lea.js';
import { readCrate } from './helpers/ro-crate.js';
import { testStore } from './helpers/store.js';

const TEN_MINUTES = 600_000;
type Record_ = RunRecord & { result?: { stages: { name: string; output: ArtifactRef | null }[] } };

test(
  'the smoke run exports as an RO-Crate with every stage, input hash and metric',
  { timeout: TEN_MINUTES },
  async () => {
    const r = runLea(['run', 'configs/smoke.yaml', '--wait', '--json'], process.env, TEN_MINUTES);
    assert.equal(r.code, 0, explain(r));
    const record = JSON.parse(r.stdout) as Record_;
    const dir = join(mkdtempSync(join(tmpdir(), 'lea-export-')), 'crate');
    const e = runLea(['export', record.runId, '--ro-crate', dir, '--with-files']);
    assert.equal(e.code, 0, explain(e));
    const c = readCrate(dir);

    const actions = new Map(c.createActions.map((a) => [a.id, a]));
    assert.equal(c.mainEntity.steps.length, record.stages.length);
    for (const s of record.stages) {
      const action = actions.get(`#${record.runId}/action/${s.name}`);
      assert.ok(action, `stage ${s.name} is an action`);
      assert.equal(action.actionStatus, 'http://schema.org/CompletedActionStatus');
    }
    const hashes = new Set(Object.values(c.files).map((f) => f.sha256));
    const store = testStore();
    try {
      for (const s of record.result!.stages) {
        const inputs = (await store.require(s.output!)).meta.inputs as Record<string, ArtifactRef>;
        for (const [name, ref] of Object.entries(inputs))
          for (const f of (await store.require(ref)).files)
            assert.ok(hashes.has(f.sha256), `${s.name}'s input ${name}: ${f.path} ${f.sha256}`);
      }
    } finally {
      store.s3.destroy();
    }
    assert.deepEqual(Object.keys(c.runResults).sort(), Object.keys(record.metrics).sort());
    for (const [name, value] of Object.entries(record.metrics)) {
      assert.equal(c.runResults[name]!.value, value, name);
      assert.ok(
        c.runResults[name]!.description?.startsWith(record.metricDefinitions![name]!.definition),
        name,
      );
    }
    // the record, the metrics and the report travel with it, byte-exact
    const carried = Object.entries(c.files).filter(([, f]) => f.carried);
    for (const id of ['record.json', `workflows/${record.runId}.json`])
      assert.ok(
        carried.some(([i]) => i === id),
        id,
      );
    assert.ok(
      carried.some(([i]) => i.endsWith('/index.html')),
      'the report',
    );
    for (const [id, f] of carried) if (f.sha256) assert.equal(f.bytesSha256, f.sha256, id);
  },
);

test('exporting an unknown run is a bad input that names it', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'lea-export-')), 'crate');
  const r = runLea(['export', 'no-such-run', '--ro-crate', dir]);
  assert.equal(r.code, 2, explain(r));
  assert.match(r.stderr, /no run 'no-such-run'/);
});
