/** A suite's table: a row per subject, the mean over the completed runs, the baseline beside it (lib/report/suite.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meanMetrics, type SuiteMember } from '../lib/pipeline/suite.js';
import { suiteHtml, suiteText, type SuiteReportInput } from '../lib/report/suite.js';

const member = (
  subject: string,
  status: SuiteMember['status'],
  metrics: Record<string, number>,
): SuiteMember => ({
  runId: `paper-god-${subject}-x`,
  configName: `paper-god-${subject}`,
  dataset: 'god',
  subject,
  status,
  metrics,
});

const members = [
  member('sbj_1', 'completed', {
    'decode.twoway_pcc': 0.8,
    'decode.proto_nway5': 0.5,
    'ref.shuffled.decode.twoway_pcc': 0.5,
  }),
  member('sbj_2', 'completed', { 'decode.twoway_pcc': 0.6, 'decode.proto_nway5': NaN }),
  member('sbj_3', 'failed', { 'decode.twoway_pcc': 0.1 }),
];

test('the mean covers the completed runs that have a finite value', () => {
  const mean = meanMetrics(members);
  assert.ok(Math.abs(mean['decode.twoway_pcc']! - 0.7) < 1e-12, 'the failed run is left out');
  assert.equal(mean['decode.proto_nway5'], 0.5, 'a NaN is left out');
  assert.equal(mean['ref.shuffled.decode.twoway_pcc'], 0.5);
});

test('the table: a row per subject, the mean (saying when it covers fewer runs), the baseline, stand-ins named', () => {
  const input: SuiteReportInput = {
    suiteId: 'suite-x',
    name: 'paper-god-sbj_1+paper-god-sbj_2+paper-god-sbj_3',
    codeVersion: 'abc',
    startedAt: '2026-11-30T00:00:00Z',
    finishedAt: '2026-11-30T01:00:00Z',
    members,
    mean: meanMetrics(members),
    baseline: { name: 'mine', source: 'filled in by hand', values: { 'decode.twoway_pcc': null } },
    verdict: null,
  };
  const text = suiteText(input);
  const lines = text.split('\n');
  assert.match(lines[0]!, /^metric\s+sbj_1\s+sbj_2\s+sbj_3\s+mean\s+baseline$/);
  assert.match(text, /decode\.twoway_pcc\s+0\.8\s+0\.6\s+0\.1\s+0\.7\s+–/);
  assert.match(text, /decode\.proto_nway5\s+0\.5\s+NaN\s+–\s+0\.5 \(1 of 2\)/);
  // paper metrics come first, reference rows last
  const order = lines.slice(1).map((l) => l.split(/\s+/)[0]);
  assert.deepEqual(order, ['decode.twoway_pcc', 'decode.proto_nway5', 'ref.shuffled.decode.twoway_pcc']);

  const html = suiteHtml(input);
  for (const row of ['sbj_1', 'sbj_2', 'sbj_3', 'mean', 'baseline'])
    assert.match(html, new RegExp(`data-subject="${row}"`));
  assert.match(html, /stand-in for decode\.nway/);
  assert.match(html, /fail-text">failed/);
  assert.match(html, /Reference rows/);
  assert.match(html, /No regression verdict/);
});
