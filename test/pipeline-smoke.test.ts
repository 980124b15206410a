/**
 * The smoke reproduction end to end through the real servers and the `lea` CLI: every stage on the tiny
 * synthetic world, then a re-run from cache, a dry run's cache states, a forced stage, and scheduled
 * regression runs with verdicts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import type { ReproductionResult } from '../workflows/reproduction.js';
import { explain, repoRoot, runLea } from './helpers/lea.js';
import { readEvents } from './helpers/oracle.js';
import { testStore } from './helpers/store.js';

const TEN_MINUTES = 600_000;
type Record_ = RunRecord & { result?: unknown };

function run(args: string[]): Record_ {
  const r = runLea(['run', 'configs/smoke.yaml', '--wait', '--json', ...args], process.env, TEN_MINUTES);
  assert.equal(r.code, 0, explain(r));
  return JSON.parse(r.stdout) as Record_;
}

const statuses = (r: Record_) => Object.fromEntries(r.stages.map((s) => [s.name, s.status]));
let first: Record_ | undefined;
/** The first run's record, which the later tests compare with; they fail with this message when it failed. */
const firstRun = (): Record_ => {
  assert.ok(first, 'the first smoke run failed (see the first test), so there is nothing to compare with');
  return first;
};
/** Which stages failed and why, for a message. */
const failures = (r: Record_) =>
  JSON.stringify({ error: r.error, stages: r.stages.filter((s) => s.error).map((s) => [s.name, s.error]) });

test(
  'the smoke config runs every stage, above chance on decoding and encoding',
  { timeout: TEN_MINUTES },
  (t) => {
    const record = run([]);
    assert.equal(record.status, 'completed', failures(record));
    for (const s of record.stages)
      assert.ok(['completed', 'cached'].includes(s.status), `${s.name}: ${s.status}`);
    first = record;
    const m = record.metrics;
    t.diagnostic(JSON.stringify(m));
    // No paper metric that needs a network the smoke config does not import; every name has a definition,
    // and those marked paper are the pixel ones, computed as spec §5 computes them.
    const paper = Object.entries(record.metricDefinitions ?? {}).filter(([, d]) => d.paper);
    assert.deepEqual(Object.keys(record.metricDefinitions ?? {}).sort(), Object.keys(m).sort());
    assert.deepEqual(paper.map(([n]) => n).sort(), [
      'decode.ssim',
      'decode.twoway_mse',
      'decode.twoway_mse_uint8wrap',
      'decode.twoway_pcc',
      'decode.twoway_snr',
      'decode.twoway_snr_uint8wrap',
    ]);
    // Margins over chance that the miniature reaches with room to spare (spec §7 "expected": 5-way >> 20 %,
    // feature 2-way > 70 %, encoding r > 0.3); a broken stage anywhere in the chain falls to chance.
    // The prototype classifier's class means now come from training images only (they used to include the
    // test image itself), and its chance is measured on mismatched items. Measured here (seed 666): 5-way 0.741,
    // its chance 0.164 (not 1/5), the same score on a shuffled pairing 0.014; φ 2-way 0.868. The old 0.35
    // still leaves twice the margin, so the thresholds stay; the 5-way must also clear its measured chance by
    // 0.3, and the shuffled pairing must not beat it by more than 0.1.
    assert.ok(m['decode.phi_twoway']! > 0.65, `φ 2-way ${m['decode.phi_twoway']} (chance 0.5)`);
    // The report shows each metric's definition and its measured chance.
    const out = join(mkdtempSync(join(tmpdir(), 'lea-smoke-report-')), 'report');
    const rep = runLea(['report', record.runId, '--out', out]);
    assert.equal(rep.code, 0, explain(rep));
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    const chanceOf = (name: string) => {
      const row = html.match(new RegExp(`<tr[^>]*data-metric="${name.replace(/\./g, '\\.')}">(.*?)</tr>`));
      assert.ok(row, `${name} has a report row`);
      assert.match(row[1]!, /class="definition"/, `${name} shows its definition`);
      return Number([...row[1]!.matchAll(/data-value="([^"]+)"/g)][1]![1]);
    };
    const chance5 = chanceOf('decode.proto_nway5');
    t.diagnostic(`5-way chance measured on mismatched items: ${chance5}`);
    assert.ok(
      m['decode.proto_nway5']! > chance5 + 0.3,
      `5-way ${m['decode.proto_nway5']} (chance ${chance5})`,
    );
    const shuffled = m['ref.shuffled.decode.proto_nway5']!;
    assert.ok(shuffled < chance5 + 0.1, `5-way on a shuffled pairing ${shuffled} (chance ${chance5})`);
    // Every item-mean metric has a bootstrap interval around its value; FID-like and whole-stack ones none.
    const intervals = record.metricIntervals ?? {};
    assert.match(record.intervalMethod ?? '', /95% percentile bootstrap over test items \(2000 resamples/);
    for (const name of ['decode.twoway_pcc', 'decode.proto_nway5', 'decode.ssim_mean', 'encode.pearson']) {
      const [low, high] = intervals[name] ?? [NaN, NaN];
      assert.ok(
        low <= m[name]! + 1e-12 && m[name]! <= high + 1e-12,
        `${name} ${m[name]} in [${low}, ${high}]`,
      );
      assert.ok(high > low, `${name}: 12 items that differ give an interval of some width`);
    }
    for (const name of ['decode.ssim', 'decode.fid_phi', 'encode.pearson_voxel'])
      assert.equal(intervals[name], undefined, `${name} is not a mean over items`);
    assert.match(
      html,
      /data-metric="decode\.twoway_pcc"><td[^>]*>[^<]*<\/td><td class="num" data-value="[^"]+" data-low=/,
    );
    assert.match(html, /scores\.json/, 'the per-item scores are among the artifacts');
    assert.ok(m['encode.pearson']! > 0.3, `encoding r ${m['encode.pearson']} (chance ~0)`);
    assert.ok(m['encode.twoway']! > 0.7, `encoding 2-way ${m['encode.twoway']} (chance 0.5)`);
  },
);

test('lea tensorboard: every step of fmri-ae and maskgit with the losses the run recorded, and the metrics', async () => {
  const record = firstRun();
  const logdir = join(mkdtempSync(join(tmpdir(), 'lea-tb-')), 'logdir');
  const r = runLea(['tensorboard', record.runId, '--out', logdir]);
  assert.equal(r.code, 0, explain(r));
  assert.match(r.stdout, new RegExp(`tensorboard --logdir ${logdir}`));
  const stages = (record.result as ReproductionResult).stages;
  const store = testStore();
  try {
    for (const name of ['fmri-ae', 'maskgit']) {
      const output = stages.find((s) => s.name === name)!.output!;
      const losses = JSON.parse((await store.readBytes(output, 'losses.json')).toString()) as {
        step: number;
        loss: number;
      }[];
      const events = readEvents(join(logdir, record.runId, name));
      assert.deepEqual(
        events['train/loss']!.map(([step, value]) => [step, value]),
        losses.map((p) => [p.step, Math.fround(p.loss)]),
        `${name}: TensorBoard's loss curve is the recorded one, every step once`,
      );
      for (const tag of ['train/learning_rate', 'train/grad_norm'])
        assert.equal(events[tag]!.length, losses.length, `${name} ${tag}`);
      assert.ok(events['train/steps_per_second']!.length > 0);
    }
  } finally {
    store.s3.destroy();
  }
  const metrics = readEvents(join(logdir, record.runId, 'metrics'));
  assert.deepEqual(metrics['metrics/decode.twoway_pcc'], [
    [0, Math.fround(record.metrics['decode.twoway_pcc']!), metrics['metrics/decode.twoway_pcc']![0]![2]],
  ]);
});

test(
  'a second run of the same config trains nothing: every stage comes from the cache',
  { timeout: TEN_MINUTES },
  () => {
    const before = firstRun();
    const again = run([]);
    assert.deepEqual(new Set(Object.values(statuses(again))), new Set(['cached']));
    assert.deepEqual(again.metrics, before.metrics);
  },
);

test(
  'lea run --dry-run after the run: every stage cached; a new decoding section runs decode, --force what follows',
  { timeout: TEN_MINUTES },
  () => {
    firstRun();
    const dry = (args: string[]) => {
      const r = runLea(['run', 'configs/smoke.yaml', '--dry-run', ...args]);
      assert.equal(r.code, 0, explain(r));
      return r.stdout;
    };
    const all = JSON.parse(dry(['--json'])) as {
      stages: { stage: string; cached: boolean; seconds?: number }[];
    };
    for (const s of all.stages) assert.ok(s.cached && s.seconds === 0, `${s.stage}: ${JSON.stringify(s)}`);
    const text = dry(['--set', 'decoding.samples=3', '--force', 'encode']);
    const cache = Object.fromEntries(
      [...text.matchAll(/^(\S+) +(?:cpu|gpu) +(cached|runs|forced) /gm)].map((m) => [m[1], m[2]]),
    );
    assert.deepEqual(cache, {
      ...Object.fromEntries(all.stages.map((s) => [s.stage, 'cached'])),
      decode: 'runs',
      encode: 'forced',
      metrics: 'forced',
    });
    const n = all.stages.length;
    assert.match(text, new RegExp(`^${n - 3} of ${n} stages cached, 2 forced`, 'm'));
  },
);

test(
  '--force of one stage recomputes it and what is downstream, nothing else',
  { timeout: TEN_MINUTES },
  () => {
    const before = firstRun();
    const forced = run(['--force', 'ridge']);
    const s = statuses(forced);
    for (const name of ['raw', 'prepare', 'mae', 'fmri-ae', 'features', 'tokenizer', 'maskgit', 'latents']) {
      assert.equal(s[name], 'cached', name);
    }
    for (const name of ['ridge', 'decode', 'encode', 'metrics']) assert.equal(s[name], 'completed', name);
    assert.deepEqual(forced.metrics, before.metrics, 'a deterministic recomputation gives the same numbers');
  },
);

test(
  'scheduled regression runs: a matching baseline passes, a wrong one regresses naming the metric',
  { timeout: TEN_MINUTES },
  async () => {
    const pearson = firstRun().metrics['encode.pearson']!;
    const dir = mkdtempSync(join(tmpdir(), 'lea-baseline-'));
    const baseline = (name: string, value: number) => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(
        file,
        `name: ${name}\nsource: test\nmetrics:\n  encode.pearson: { value: ${value}, tolerance: 0.05, better: higher }\n`,
      );
      return file;
    };
    const verdictOf = async (schedule: string, file: string): Promise<Record_> => {
      for (const args of [
        [
          'schedule',
          'create',
          schedule,
          '--config',
          'configs/smoke.yaml',
          '--cron',
          '0 3 * * *',
          '--baseline',
          file,
        ],
        ['schedule', 'trigger', schedule],
      ]) {
        const r = runLea(args);
        assert.equal(r.code, 0, explain(r));
      }
      const deadline = Date.now() + TEN_MINUTES;
      for (;;) {
        const list = JSON.parse(runLea(['runs', '--json']).stdout) as Record_[];
        const mine = list.find((r) => r.runId.startsWith(`smoke-scheduled-${schedule}`));
        if (mine && mine.status !== 'running') {
          runLea(['schedule', 'delete', schedule]);
          return mine;
        }
        assert.ok(Date.now() < deadline, 'scheduled run did not finish');
        await new Promise((r) => setTimeout(r, 1000));
      }
    };
    // Scheduled runs are started by the server: a worker process must be polling for them.
    const worker = spawn(process.execPath, ['bin/lea.js', 'worker'], {
      cwd: repoRoot,
      env: process.env,
      stdio: 'ignore',
    });
    try {
      const good = await verdictOf('regress-pass', baseline('pass', pearson));
      assert.equal(good.status, 'completed', failures(good));
      assert.equal(good.verdict, 'pass');
      const bad = await verdictOf('regress-fail', baseline('fail', pearson + 0.5));
      assert.equal(bad.verdict, 'regressed');
      const status = runLea(['status', bad.runId]);
      assert.match(status.stdout, /verdict: regressed/);
      assert.match(status.stdout, /encode\.pearson: .* vs baseline/);
      // each metric with its definition, marked when it is not computed as the paper computes it
      // each value with its interval: an item-mean metric's bootstrap interval [low, high]
      assert.match(status.stdout, /encode\.pearson = \S+ \[\S+, \S+\] {2}\[not the paper's\] Pearson r/);
      assert.match(status.stdout, /decode\.twoway_pcc = \S+ \[\S+, \S+\] {2}\[paper\] 2-way identification/);
      assert.match(status.stdout, /decode\.ssim = \S+ {2}\[paper\] SSIM of the whole stacks/);
      const regressions = JSON.parse(runLea(['runs', '--regressions', '--json']).stdout) as Record_[];
      assert.deepEqual(
        regressions.map((r) => r.runId),
        [bad.runId],
      );
    } finally {
      worker.kill('SIGTERM');
    }
  },
);

// After the scheduled runs, whose test expects their regressed run to be the only one.
test(
  'lea run --wait exits 3 on a regressed verdict, with the record on stdout',
  { timeout: TEN_MINUTES },
  () => {
    const pearson = firstRun().metrics['encode.pearson']!;
    const file = join(mkdtempSync(join(tmpdir(), 'lea-baseline-')), 'unreachable.yaml');
    writeFileSync(
      file,
      `name: unreachable\nsource: test\nmetrics:\n  encode.pearson: { value: ${pearson + 0.5}, tolerance: 0.05, better: higher }\n`,
    );
    const r = runLea(
      ['run', 'configs/smoke.yaml', '--wait', '--json', '--baseline', file],
      process.env,
      TEN_MINUTES,
    );
    assert.equal(r.code, 3, explain(r));
    const record = JSON.parse(r.stdout) as Record_;
    assert.equal(record.status, 'completed', failures(record));
    assert.equal(record.verdict, 'regressed');
    assert.match((record.regressions ?? []).join('\n'), /encode\.pearson: .* vs baseline/);
  },
);
