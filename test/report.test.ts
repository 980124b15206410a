/**
 * The run report: rendered from generated data and opened in headless Chromium (Debian's /usr/bin/chromium
 * driven by playwright-core; no downloaded browser). Every image must load, the metrics table must hold the
 * input's numbers, the console must stay clean and nothing may be fetched from outside the report folder.
 * A screenshot and a PDF land in test-output/. The stored bundle and `lea report` run against the real
 * artifact store that scripts/test.sh starts.
 */
import { Command } from 'commander';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { registerReportCommand } from '../cli/commands/report.js';
import { Rng } from '../lib/compute/rng.js';
import { judge, type Baseline } from '../lib/pipeline/regression.js';
import { fmtNumber } from '../lib/report/format.js';
import { loadReportInput, reportInputFiles, reportInputKey } from '../lib/report/load.js';
import { writeComparison, writeReport, type ReportInput } from '../lib/report/report.js';
import { roiPearson } from '../lib/report/stats.js';
import { ndarray, type NdArray } from '../lib/tensors/ndarray.js';
import { imageStates, launchBrowser, openPage, type Browser } from './helpers/browser.js';
import { repoRoot } from './helpers/lea.js';
import { testStore } from './helpers/store.js';

const N = 6;
const S = 5;
const SIZE = 16;
const ROI_SIZES = [80, 64, 64, 48];
const K = ROI_SIZES.reduce((a, b) => a + b, 0);
const outputDir = join(repoRoot, 'test-output');

/**
 * Test images: a coloured square or disc on a coloured background, drawn from `scene` (the same test set for
 * every run); samples are jittered, noisy copies drawn from `run`, the last one in a wrong colour.
 */
function images(scene: Rng, run: Rng): { stimuli: NdArray; samples: NdArray } {
  const stimuli = ndarray('uint8', [N, SIZE, SIZE, 3]);
  const samples = ndarray('uint8', [N, S, SIZE, SIZE, 3]);
  const color = (rng: Rng) => [rng.integer(0, 256), rng.integer(0, 256), rng.integer(0, 256)];
  const tile = SIZE * SIZE * 3;
  const draw = (
    out: NdArray,
    index: number,
    bg: number[],
    fg: number[],
    cx: number,
    cy: number,
    disc: boolean,
    noise: number,
  ) => {
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const inside = disc
          ? (x - cx) ** 2 + (y - cy) ** 2 <= 16
          : Math.abs(x - cx) <= 3 && Math.abs(y - cy) <= 3;
        const rgb = inside ? fg : bg;
        for (let ch = 0; ch < 3; ch++) {
          const v = rgb[ch]! + (noise ? run.normal(0, noise) : 0);
          out.data[index * tile + (y * SIZE + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
  };
  for (let i = 0; i < N; i++) {
    const [bg, fg] = [color(scene), color(scene)];
    const [cx, cy, disc] = [scene.integer(5, 11), scene.integer(5, 11), i % 2 === 0];
    draw(stimuli, i, bg, fg, cx, cy, disc, 0);
    for (let s = 0; s < S; s++) {
      const jitter = () => run.integer(-2, 3);
      draw(samples, i * S + s, bg, s === S - 1 ? color(run) : fg, cx + jitter(), cy + jitter(), disc, 18);
    }
  }
  return { stimuli, samples };
}

function encoding(rng: Rng): ReportInput['encoding'] {
  const measured = ndarray('float32', [N, K]);
  const predicted = ndarray('float32', [N, K]);
  rng.fillNormal(measured.data as Float32Array);
  // prediction quality falls off from the early ROIs to the later ones, as it does in the real data
  let v0 = 0;
  ROI_SIZES.forEach((size, r) => {
    for (let i = 0; i < N; i++) {
      for (let v = v0; v < v0 + size; v++) {
        predicted.data[i * K + v] =
          0.8 * (measured.data[i * K + v] as number) * (1 - r * 0.25) + rng.normal(0, 0.4);
      }
    }
    v0 += size;
  });
  return { measured, predicted, roiNames: ['early-1', 'early-2', 'high-1', 'high-2'], roiSizes: ROI_SIZES };
}

function lossCurve(
  stage: string,
  steps: number,
  start: number,
  end: number,
  rng: Rng,
): ReportInput['lossCurves'][number] {
  return {
    stage,
    points: Array.from({ length: steps / 10 + 1 }, (_, j) => {
      const t = (j * 10) / steps;
      return { step: j * 10, loss: start * (end / start) ** t * Math.exp(rng.normal(0, 0.05)) };
    }),
  };
}

/** A whole ReportInput from generated data, with a real verdict from judge(). */
function makeInput(runId: string, seed: number): ReportInput {
  const rng = new Rng(seed, 'report-test');
  const metrics = [
    { name: 'decode.nway5', value: 0.4123, min: 0.38, max: 0.455, chance: 0.2 },
    { name: 'decode.nway16', value: 0.1875, min: 0.15, max: 0.21, chance: 0.0625 },
    { name: 'decode.twoway_pcc', value: 0.7316, min: 0.7, max: 0.76, chance: 0.5 },
    { name: 'decode.twoway_clip', value: 0.6842, min: 0.65, max: 0.71, chance: 0.5 },
    { name: 'decode.ssim', value: 0.20918, min: 0.2, max: 0.22 },
    { name: 'encode.pearson', value: 0.5573, chance: 0.0012 },
    { name: 'encode.mse', value: 0.00042 },
  ].map((m) => ({ ...m, value: m.value + seed * 1e-3 }));
  const baselineFile: Baseline = {
    name: 'synthetic-paper',
    source: 'hand-written for this test',
    alpha: 0.01,
    correction: 'holm',
    resamples: 10_000,
    metrics: {
      'decode.nway5': { value: 0.4, tolerance: 0.05, better: 'higher' },
      'decode.nway16': { value: 0.25, tolerance: 0.02, better: 'higher' },
      'decode.twoway_pcc': { value: null, tolerance: 0.02, better: 'higher' },
      'encode.pearson': { value: 0.55, tolerance: 0.05, better: 'higher' },
      'decode.fid': { value: 120, tolerance: 5, better: 'lower' },
    },
  };
  const verdict = judge({ metrics: Object.fromEntries(metrics.map((m) => [m.name, m.value])) }, baselineFile);
  const stages = [
    { name: 'data', seconds: 3.2, cached: true },
    { name: 'train_fmri_ae', seconds: 412.5, cached: false, step: 2000, totalSteps: 2000, loss: 0.0213 },
    { name: 'train_maskgit', seconds: 1290.1, cached: false, step: 3000, totalSteps: 3000, loss: 2.31 },
    { name: 'ridge', seconds: 8.4, cached: false },
    { name: 'decode', seconds: 95, cached: false },
    { name: 'metrics', seconds: 21.7, cached: false },
  ].map((s) => ({ ...s, status: s.cached ? ('cached' as const) : ('completed' as const) }));
  return {
    run: {
      runId,
      config: 'configs/mini.yaml',
      status: 'completed',
      startedAt: '2026-03-02T09:00:00.000Z',
      finishedAt: '2026-03-02T09:31:40.512Z',
      stages,
      metrics: Object.fromEntries(metrics.map((m) => [m.name, m.value])),
      verdict: verdict.verdict,
      configName: 'mini-god',
      dataset: 'god (synthetic, tiny)',
      subject: 'sbj_1',
      codeVersion: `a1b2c3d${seed}`,
      backend: 'tensorflow (libtensorflow 2.21.0, 2 threads)',
      machine: 'test-host (2 CPU cores, 8 GiB)',
    },
    ...images(new Rng(0, 'test-set'), rng),
    encoding: encoding(rng),
    lossCurves: [
      lossCurve('train_fmri_ae', 2000, 1.8, 0.02, rng),
      lossCurve('train_maskgit', 3000, 6.5, 2.3, rng),
      lossCurve('train_classifier', 500, 0.9, 0.62, rng),
    ],
    metrics,
    baseline: {
      name: baselineFile.name,
      source: baselineFile.source,
      values: Object.fromEntries(Object.entries(baselineFile.metrics).map(([k, e]) => [k, e.value])),
    },
    verdict,
    artifacts: stages.map((s) => ({
      stage: s.name,
      key: `stages/${s.name}/${'0123456789abcdef'.repeat(4).slice(seed, seed + 16)}`,
      files:
        s.name === 'data' ? ['train.npy', 'test.npy', 'meta.json'] : ['output.safetensors', 'summary.json'],
    })),
  };
}

let browser: Browser;

before(async () => {
  mkdirSync(outputDir, { recursive: true });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

const open = (dir: string) => openPage(browser.context, dir);

test('the report renders in Chromium: images load, the metrics table holds the numbers, it prints', async () => {
  const input = makeInput('mini-god-20260302-a', 1);
  input.artifactUrl = (key) => `https://console.example/lea/${key}`;
  const dir = mkdtempSync(join(tmpdir(), 'lea-report-'));
  const { files } = await writeReport(input, dir);
  assert.equal(files[0], 'index.html');
  for (const f of files) assert.ok(existsSync(join(dir, f)), f);

  const { page, problems } = await open(dir);
  const imgs = await imageStates(page);
  // N stimuli + N×S samples, 1 ROI bar chart, 4 voxel-pattern plots, 3 loss curves
  assert.equal(imgs.length, N + N * S + 1 + 4 + 3);
  for (const [src, complete, width] of imgs) assert.ok(complete && width > 0, `image ${src} did not load`);
  assert.deepEqual(new Set(imgs.map(([src]) => src)), new Set(files.filter((f) => f !== 'index.html')));

  const rows = await page.$$eval('table.metrics tbody tr', (trs) =>
    trs.map((tr) => ({
      metric: tr.getAttribute('data-metric'),
      fail: tr.classList.contains('fail'),
      cells: [...tr.querySelectorAll('td')].map((td) => ({
        text: td.textContent ?? '',
        value: td.getAttribute('data-value'),
        min: td.getAttribute('data-min'),
        max: td.getAttribute('data-max'),
      })),
    })),
  );
  const failed = new Set(input.verdict!.failures.map((f) => f.metric));
  assert.ok(failed.has('decode.nway16') && failed.has('decode.fid'), 'the test data must hold failures');
  for (const m of input.metrics) {
    const row = rows.find((r) => r.metric === m.name);
    assert.ok(row, `no row for ${m.name}`);
    const [, value, range, chance, base, verdict] = row.cells;
    assert.equal(Number(value!.value), m.value, m.name);
    assert.equal(value!.text, fmtNumber(m.value));
    if (m.min !== undefined) {
      assert.deepEqual([Number(range!.min), Number(range!.max)], [m.min, m.max]);
      assert.equal(range!.text, `${fmtNumber(m.min)} – ${fmtNumber(m.max!)}`);
    }
    if (m.chance !== undefined) assert.equal(Number(chance!.value), m.chance);
    const b = input.baseline!.values[m.name];
    if (typeof b === 'number') assert.equal(Number(base!.value), b);
    assert.equal(row.fail, failed.has(m.name), `${m.name} highlighted iff it failed`);
    if (failed.has(m.name)) assert.match(verdict!.text, /regressed/);
  }
  // a metric the baseline checks but the run lacks gets a failing row of its own
  const fid = rows.find((r) => r.metric === 'decode.fid');
  assert.ok(fid?.fail && fid.cells[1]!.text === 'missing');
  const banner = await page.textContent('.verdict');
  assert.match(banner ?? '', /Regressed against baseline synthetic-paper: 2 failures/);

  // the per-ROI bars show the module's own correlations
  const roi = roiPearson(input.encoding.measured, input.encoding.predicted, ROI_SIZES);
  const barsSvg = readFileSync(join(dir, 'svg/roi-correlation.svg'), 'utf8');
  for (const r of roi) assert.ok(barsSvg.includes(`>${fmtNumber(r.mean)}<`), `bar value ${r.mean}`);
  assert.ok(roi[0]!.mean > roi[3]!.mean, 'the generated encoding is better in early ROIs');

  const artifactsText = await page.textContent('table.artifacts');
  for (const a of input.artifacts)
    assert.ok(artifactsText!.includes(`artifacts/${a.key}/manifest.json`), a.key);
  assert.deepEqual(
    await page.$$eval('table.artifacts a', (links) => links.map((l) => l.getAttribute('href'))),
    input.artifacts.map((a) => `https://console.example/lea/${a.key}`),
  );
  assert.ok(await page.isVisible('text=mini-god'));
  assert.ok(await page.isVisible('text=tensorflow (libtensorflow 2.21.0, 2 threads)'));

  await page.screenshot({ path: join(outputDir, 'report.png'), fullPage: true });
  const pdf = await page.pdf({ path: join(outputDir, 'report.pdf'), format: 'A4', printBackground: true });
  assert.equal(pdf.subarray(0, 5).toString(), '%PDF-');
  // one page per section at least: header+metrics, reconstructions, encoding, loss curves, artifacts
  const pages = pdf.toString('latin1').match(/\/Type\s*\/Page[^s]/g) ?? [];
  assert.ok(pages.length >= 5, `PDF has ${pages.length} pages`);
  assert.deepEqual(problems, []);
  await page.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the comparison page shows both runs: metric deltas and the two reconstruction grids', async () => {
  const a = makeInput('mini-god-a', 1);
  const b = makeInput('mini-god-b', 2); // the same test set: the grid has one stimulus column
  const dir = mkdtempSync(join(tmpdir(), 'lea-compare-'));
  await writeComparison(a, b, dir);
  const { page, problems } = await open(dir);
  const imgs = await imageStates(page);
  assert.equal(imgs.length, N + 2 * N * S);
  for (const [src, complete, width] of imgs) assert.ok(complete && width > 0, `image ${src} did not load`);
  const deltas = await page.$$eval('table.metrics tbody tr', (trs) =>
    trs.map((tr) => [
      tr.getAttribute('data-metric'),
      tr.querySelectorAll('td')[3]?.getAttribute('data-value'),
    ]),
  );
  for (const m of a.metrics) {
    const vb = b.metrics.find((x) => x.name === m.name)!.value;
    const d = deltas.find(([name]) => name === m.name)?.[1];
    assert.equal(Number(d), vb - m.value, m.name);
  }
  assert.ok(await page.isVisible('text=run A: mini-god-a'));
  assert.ok(await page.isVisible('text=Both runs decoded the same test stimuli.'));
  await page.screenshot({ path: join(outputDir, 'report-compare.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
  rmSync(dir, { recursive: true, force: true });

  // runs on different test sets: each run's samples sit beside its own stimuli
  const c = makeInput('mini-god-c', 3);
  c.stimuli = ndarray(
    'uint8',
    c.stimuli.shape,
    (c.stimuli.data as Uint8Array).map((v) => 255 - v),
  );
  const dir2 = mkdtempSync(join(tmpdir(), 'lea-compare-'));
  const { files } = await writeComparison(a, c, dir2);
  const html = readFileSync(join(dir2, 'index.html'), 'utf8');
  assert.match(html, /The runs have different test stimuli/);
  assert.equal(html.match(/<img /g)?.length, 2 * N + 2 * N * S);
  assert.equal(files.length, 1 + 2 * N + 2 * N * S);
  rmSync(dir2, { recursive: true, force: true });
});

test('the stored bundle round-trips, and `lea report` renders it and stores the report', async () => {
  const store = testStore();
  try {
    const runId = `report-test-${Date.now().toString(36)}`;
    const input = makeInput(runId, 3);
    input.lossCurves[0]!.points[5]!.loss = Number.NaN; // JSON has no NaN: the bundle must keep it
    await store.put(reportInputKey(runId), reportInputFiles(input));
    const back = await loadReportInput(store, reportInputKey(runId));
    assert.deepEqual(back, input);

    const dir = mkdtempSync(join(tmpdir(), 'lea-report-cli-'));
    const program = new Command().exitOverride();
    registerReportCommand(program);
    await program.parseAsync(['report', runId, '--out', dir], { from: 'user' });
    const stored = await store.require(`runs/${runId}/report`);
    const html = readFileSync(join(dir, 'index.html'));
    assert.ok((await store.readBytes(stored.key, 'index.html')).equals(html));
    assert.equal(stored.files.length, 1 + N + N * S + 1 + 4 + 3);

    await assert.rejects(
      program.parseAsync(['report', 'no-such-run', '--out', dir], { from: 'user' }),
      /no run 'no-such-run': Temporal does not know it and the store has no report of it/,
    );
    rmSync(dir, { recursive: true, force: true });
  } finally {
    store.s3.destroy();
  }
});
