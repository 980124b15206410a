/**
 * A sweep end to end through the servers and the `lea` CLI (issue 34): configs/sweeps/smoke-alpha-steps.yaml,
 * ridge alpha x decoding steps, 6 points as one suite that trains once (the smoke run's trained stages, usually
 * cached by pipeline-smoke.test.ts, else computed here by one point and shared); its page in headless Chromium
 * (every plot loads, no console error, nothing fetched from outside); `lea compare SWEEP` prints the page's
 * numbers, and they equal `lea compare` of the baseline point's run and a point's run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { MetricComparison } from '../lib/pipeline/compare.js';
import type { RunRecord } from '../lib/pipeline/run-record.js';
import type { SweepComparison } from '../lib/pipeline/sweep.js';
import { SWEEP_JSON, writeSweepReport, type SweepReportInput } from '../lib/report/sweep.js';
import { imageStates, launchBrowser, openPage, type Browser } from './helpers/browser.js';
import { explain, runLea } from './helpers/lea.js';

const FIFTEEN_MINUTES = 900_000;
const CONFIG = 'configs/sweeps/smoke-alpha-steps.yaml';
const TRAINING = ['mae', 'fmri-ae', 'tokenizer', 'maskgit'];
const FAMILY = ['decode.twoway_pcc', 'decode.twoway_mse', 'decode.twoway_snr', 'encode.pearson'];
const dir = mkdtempSync(join(tmpdir(), 'lea-sweep-'));
let browser: Browser;
let sweep: RunRecord | undefined;
const sweepRun = (): RunRecord => {
  assert.ok(sweep, 'the sweep failed (see the first test)');
  return sweep;
};

before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Each point's cells as the page holds them: metric → its data-* numbers. */
type PageCells = Record<string, Record<string, Record<string, string | null>>>;

test(
  'lea sweep: 6 points as one suite, trained once, followed point by point',
  { timeout: FIFTEEN_MINUTES },
  () => {
    const r = runLea(['sweep', CONFIG, '--wait', '--json'], process.env, FIFTEEN_MINUTES);
    assert.equal(r.code, 0, explain(r));
    const record = JSON.parse(r.stdout) as RunRecord;
    assert.match(record.runId, /^sweep-/);
    assert.equal(record.status, 'completed', record.error);
    const points = record.members!.map((m) => m.point);
    assert.deepEqual(points, [
      'decoding.steps=4 alignment.cvAlphas=[1]',
      'decoding.steps=4 alignment.cvAlphas=[10]',
      'decoding.steps=4 alignment.cvAlphas=[100]',
      'decoding.steps=11 alignment.cvAlphas=[1]',
      'decoding.steps=11 alignment.cvAlphas=[10]',
      'decoding.steps=11 alignment.cvAlphas=[100]',
    ]);
    for (const stage of TRAINING) {
      const rows = record.members!.flatMap((m) => m.stages.filter((s) => s.name === stage));
      if (rows.length === 0) continue; // the miniature has no trained tokenizer
      assert.equal(rows.length, 6, stage);
      const computed = rows.filter((s) => !s.cached);
      assert.ok(computed.length <= 1, `${stage} computed by ${computed.length} points`);
    }
    sweep = record;

    const status = runLea(['status', record.runId]);
    assert.equal(status.code, 0, explain(status));
    for (const p of points) assert.ok(status.stdout.includes(`  point ${p}\n`), `status names point ${p}`);
    // the points' table has no mean over them (they are settings, not replicates)
    assert.doesNotMatch(status.stdout, /^ {2}metric .* mean/m);
    assert.match(status.stdout, new RegExp(`lea compare ${record.runId}`));
  },
);

test('the sweep page renders in Chromium and `lea compare` prints its numbers', async () => {
  const id = sweepRun().runId;
  const out = join(dir, 'page');
  const rep = runLea(['report', id, '--out', out]);
  assert.equal(rep.code, 0, explain(rep));
  const { page, problems } = await openPage(browser.context, out);
  const imgs = await imageStates(page);
  // the parallel coordinates, and a line plot per swept key and metric of the family
  assert.equal(imgs.length, 1 + 2 * FAMILY.length);
  for (const [src, complete, width] of imgs) assert.ok(complete && width > 0, `image ${src} did not load`);
  const cells: PageCells = Object.fromEntries(
    await page.$$eval('table.sweep tbody tr', (trs) =>
      trs.map((tr) => [
        tr.getAttribute('data-point')!,
        Object.fromEntries(
          [...tr.querySelectorAll('td[data-metric]')].map((td) => [
            td.getAttribute('data-metric')!,
            Object.fromEntries(td.getAttributeNames().map((n: string) => [n, td.getAttribute(n)])),
          ]),
        ),
      ]),
    ),
  );
  assert.equal(Object.keys(cells).length, 6);
  assert.match((await page.textContent('#detectable')) ?? '', /smallest detectable difference/);
  assert.deepEqual(problems, []);
  await page.close();

  const json = runLea(['compare', id, '--json']);
  assert.equal(json.code, 0, explain(json));
  const c = JSON.parse(json.stdout) as SweepComparison;
  assert.deepEqual(c.settings.family, FAMILY);
  const baseline = c.rows.find((r) => r.name === c.baseline)!;
  assert.equal(baseline.label, 'decoding.steps=11 alignment.cvAlphas=[10]');
  const compared = c.rows.filter((r) => r.comparisons);
  assert.equal(compared.length, 5);
  const num = (v: string | null | undefined) => (v === null || v === undefined ? undefined : Number(v));
  for (const r of compared)
    for (const d of r.comparisons!) {
      const cell = cells[r.name]![d.metric]!;
      assert.equal(num(cell['data-difference']), d.difference ?? undefined, `${r.name} ${d.metric}`);
      assert.equal(num(cell['data-p']), d.p, `${r.name} ${d.metric} p`);
      assert.equal(num(cell['data-p-adjusted']), d.pAdjusted, `${r.name} ${d.metric} corrected p`);
      assert.equal(d.pAdjusted !== undefined, FAMILY.includes(d.metric) && d.p !== undefined);
    }
  const text = runLea(['compare', id]);
  assert.match(text.stdout, /decoding\.steps=4 alignment\.cvAlphas=\[1\]\s+decode\.twoway_pcc\s/);
  assert.match(text.stdout, /smallest detectable difference .* at least \d+ of the 12 items/);

  // the page's differences are `lea compare` of the baseline point's run and the point's run
  // one pair (each `lea` call costs seconds of CI): the point that differs from the baseline in both keys
  for (const r of [compared[0]!]) {
    const pair = runLea([
      'compare',
      baseline.runIds[0]!,
      r.runIds[0]!,
      '--json',
      '--metrics',
      FAMILY.join(','),
    ]);
    assert.equal(pair.code, 0, explain(pair));
    const rows = (JSON.parse(pair.stdout) as { metrics: MetricComparison[] }).metrics;
    for (const d of rows) {
      const cell = cells[r.name]![d.metric];
      assert.ok(cell, `${r.name} has ${d.metric}`);
      assert.equal(num(cell['data-difference']), d.difference ?? undefined, `${r.name} ${d.metric}`);
      assert.equal(num(cell['data-p']), d.p, `${r.name} ${d.metric} p`);
      assert.equal(num(cell['data-p-adjusted']), d.pAdjusted, `${r.name} ${d.metric} corrected p`);
      if (d.interval) assert.equal(num(cell['data-difference-low']), d.interval[0]);
    }
  }
});

test('a failed point is named on the page with its error, the others still compared', async () => {
  const input = JSON.parse(readFileSync(join(dir, 'page', SWEEP_JSON), 'utf8')) as SweepReportInput;
  const victim = input.comparison.rows.find((r) => r.comparisons)!;
  Object.assign(victim, { status: 'failed', error: 'stage decode failed: out of memory' });
  delete victim.metrics;
  delete victim.comparisons;
  const out = join(dir, 'failed');
  await writeSweepReport(input, out);
  const { page, problems } = await openPage(browser.context, out);
  assert.match(
    (await page.textContent('.verdict.fail')) ?? '',
    /Failed points:.*stage decode failed: out of memory/,
  );
  assert.equal(await page.$eval(`tr[data-point="${victim.name}"]`, (tr) => tr.className), 'fail');
  for (const [src, complete, width] of await imageStates(page))
    assert.ok(complete && width > 0, `image ${src} did not load`);
  assert.deepEqual(problems, []);
  await page.close();
});
