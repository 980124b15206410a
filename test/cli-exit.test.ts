/**
 * What a script sees from `lea` against the real servers: bad input refused at submit time with nothing started,
 * exit codes and the JSON record of a failed run, one line per error, and the small refusals (cron, cancel of a
 * finished run, report of an unknown run, --out on a file).
 */
import type { Client } from '@temporalio/client';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadInfraSettings } from '../lib/config/infra.js';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import { connectClient } from '../workers/temporal-connection.js';
import { explain, repoRoot, runLea } from './helpers/lea.js';

const settings = loadInfraSettings(process.env);
const dir = mkdtempSync(join(tmpdir(), 'lea-exit-'));
let client: Client;

before(async () => {
  client = await connectClient(settings.temporal);
});
after(() => client.connection.close());

async function workflowCount(): Promise<number> {
  return (await client.workflow.count()).count;
}

/** The smoke config with its synthetic source replaced. */
function configWithSource(name: string, source: string): string {
  const smoke = readFileSync(join(repoRoot, 'configs/smoke.yaml'), 'utf8');
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    smoke
      .replace(/^name: smoke$/m, `name: ${name}`)
      .replace('  source:\n    kind: synthetic\n    scale: tiny\n    seed: 1\n', source),
  );
  return file;
}

test('a malformed baseline or dataset manifest is refused in one line before anything starts', async () => {
  const baseline = join(dir, 'bad-baseline.yaml');
  writeFileSync(
    baseline,
    'name: b\nsource: t\nmetrics:\n  decode.nway5: { value: 0.3, tolerance: 0.1, better: up }\n',
  );
  const manifest = join(dir, 'bad-manifest.yaml');
  writeFileSync(manifest, 'dataset: god\nfiles:\n  - { name: sbj_1.npz, sha256: null }\n');
  const fetching = configWithSource('bad-manifest-run', `  source: { kind: fetch, manifest: ${manifest} }\n`);
  const before = await workflowCount();
  for (const [args, problem] of [
    [
      ['run', 'configs/smoke.yaml', '--baseline', baseline, '--wait'],
      /bad-baseline\.yaml: invalid baseline: metrics\.decode\.nway5\.better: /,
    ],
    [
      [
        'schedule',
        'create',
        'bad-baseline',
        '--config',
        'configs/smoke.yaml',
        '--cron',
        '0 3 * * *',
        '--baseline',
        baseline,
      ],
      /bad-baseline\.yaml: invalid baseline: metrics\.decode\.nway5\.better: /,
    ],
    [['run', fetching, '--wait'], /bad-manifest\.yaml: files\.0 \(sbj_1\.npz\) has no (url|sha256)/],
  ] as const) {
    const r = runLea([...args]);
    assert.equal(r.code, 2, explain(r));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, problem);
  }
  assert.equal(await workflowCount(), before, 'a workflow was started');
  const schedules = JSON.parse(runLea(['schedule', 'list', '--json']).stdout) as { id: string }[];
  assert.ok(!schedules.some((s) => s.id === 'bad-baseline'), 'the schedule was created');
});

test('a failed run: exit 4, its record on stdout with --json, one line per error, the SDK log in the log file', () => {
  // A manifest whose one file is missing: the run starts (it is well-formed) and its fetch stage fails.
  const manifest = join(dir, 'missing-file.yaml');
  writeFileSync(
    manifest,
    `dataset: god\nfiles:\n  - { name: sbj_1.npz, url: "file://${dir}/absent.npz", sha256: "${'0'.repeat(64)}" }\n`,
  );
  const cfg = configWithSource('exit-failed', `  source: { kind: fetch, manifest: ${manifest} }\n`);
  const r = runLea(['run', cfg, '--wait', '--json', '--local-worker', 'always'], process.env, 300_000);
  assert.equal(r.code, 4, explain(r));
  const record = JSON.parse(r.stdout) as RunRecord;
  assert.equal(record.status, 'failed');
  assert.match(record.error ?? '', /absent\.npz/);
  // No stack frames or task tokens from the in-process worker: those go to its log file only.
  assert.doesNotMatch(r.stderr, /^\s+at |taskToken/m, r.stderr);
  assert.match(r.stderr, new RegExp(`^lea: run ${record.runId} failed$`, 'm'));
  const log = join(settings.home, 'logs', 'worker.log');
  assert.ok(existsSync(log), `${log} is missing`);
  assert.match(readFileSync(log, 'utf8'), /absent\.npz/);

  const cancel = runLea(['cancel', record.runId]);
  assert.equal(cancel.code, 2, explain(cancel));
  assert.match(cancel.stderr, new RegExp(`run '${record.runId}' is failed: there is nothing to cancel`));
});

test('small refusals name what is wrong: --cron, an unknown run, --out on a file', () => {
  const cron = runLea([
    'schedule',
    'create',
    'bad-cron',
    '--config',
    'configs/smoke.yaml',
    '--cron',
    '61 * * * *',
  ]);
  assert.equal(cron.code, 2, explain(cron));
  assert.match(cron.stderr, /--cron '61 \* \* \* \*': .*range/);
  const report = runLea(['report', 'no-such-run']);
  assert.equal(report.code, 2, explain(report));
  assert.match(report.stderr, /no run 'no-such-run'/);
  const file = join(dir, 'a-file');
  writeFileSync(file, '');
  const out = runLea(['report', 'no-such-run', '--out', file]);
  assert.equal(out.code, 2, explain(out));
  assert.match(out.stderr, new RegExp(`--out.*${file} exists and is not a folder`));
});
