/**
 * Names that cannot lie: every metric name the stage computes has a definition, the baseline template lists
 * only metrics computed as the paper computes them, and a baseline naming a stand-in is refused.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { BadInputError } from '../lib/errors.js';
import { metricDefinition, metricDefinitions, paperMetrics } from '../lib/metrics/definitions.js';
import { parseBaseline } from '../lib/pipeline/regression.js';

test('the baseline template lists exactly the paper metrics, each with its table and column', () => {
  const file = 'configs/baselines/paper-template.yaml';
  const template = parseBaseline(readFileSync(file, 'utf8'), file);
  assert.deepEqual(
    Object.keys(template.metrics).sort(),
    paperMetrics()
      .map(([n]) => n)
      .sort(),
  );
  for (const [name, d] of paperMetrics()) {
    assert.match(d.source ?? '', /^Table \d/, name);
    assert.equal(template.metrics[name]!.better, d.better, name);
  }
});

test('a baseline naming a stand-in is refused, naming the file, the field and the paper metric', () => {
  for (const [name, paper] of [
    ['decode.proto_nway5', 'decode.nway50'],
    ['decode.fid_phi', 'decode.fid'],
    ['decode.phi_twoway', 'decode.clip_twoway'],
  ]) {
    const text = `name: b\nsource: t\nmetrics:\n  ${name}: { value: 0.5, tolerance: 0.1 }\n`;
    assert.throws(
      () => parseBaseline(text, 'b.yaml'),
      (err: Error) =>
        err instanceof BadInputError &&
        err.message.includes(`b.yaml: invalid baseline: metrics.${name}: a stand-in for ${paper}`),
    );
  }
  parseBaseline('name: b\nsource: t\nmetrics:\n  encode.pearson: { value: 0.5, tolerance: 0.1 }\n', 'b.yaml');
});

test('every computed name has a definition; stand-ins, references and ablations are never the paper', () => {
  const names = [
    'decode.proto_nway5',
    'decode.proto_nway16',
    'ref.shuffled.decode.proto_nway5',
    'ref.shuffled.decode.nway50',
    'ref.voxels_to_phi.phi_twoway',
    'align.phi_twoway@cv',
    'align.phi_twoway@alpha500',
    'decode.ssim_mean',
  ];
  for (const name of names) {
    const d = metricDefinition(name);
    assert.ok(d, name);
    assert.equal(d.paper, false, name);
  }
  assert.match(metricDefinition('decode.proto_nway16')!.definition, /16-way .* 15 distinct other classes/);
  assert.match(metricDefinition('align.phi_twoway@alpha500')!.definition, /alpha 500/);
  assert.equal(metricDefinition('ref.shuffled.decode.nway50')!.reference, true);
  assert.deepEqual(metricDefinitions(['decode.nway50', 'nonsense']), {
    'decode.nway50': { definition: metricDefinition('decode.nway50')!.definition, paper: true },
    nonsense: { definition: 'not a metric this version computes', paper: false },
  });
});
