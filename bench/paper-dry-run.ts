/**
 * `npm run bench -- --only paper-dry-run` (or `node --import tsx bench/paper-dry-run.ts`): `lea run
 * configs/paper/god-sbj_1.yaml --dry-run` with every network the config names imported at full size (issue 12),
 * the source of README's "Paper-scale estimate". In a temporary folder, removed at the end (also on failure or
 * Ctrl-C): the synthetic GOD world at paper scale with a file:// dataset manifest; each network written with
 * random weights in its upstream file format by the reference implementations (open_clip, torchvision,
 * torch-fidelity, the lpips wheel's heads, test/oracles' MinD-Vis and MaskGIT writers), imported with
 * `lea weights import --expect full` into a private LEA_HOME on private Temporal and SeaweedFS servers, and
 * deleted once imported; then the dry run. Prints each step's wall time, the folder's peak disk use and the
 * plan's figures, and writes them as JSON to bench/results/. Heavy (about 10 GB of files written one network at a
 * time, 7 GB stored, 10 GB of disk at the peak, about 6 minutes): `npm run bench` runs it only when --only names it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { stringify } from 'yaml';
import { loadExperimentConfig } from '../lib/config/experiment.js';
import type { StageEstimate } from '../lib/pipeline/estimate.js';
import { weightsUses } from '../lib/pipeline/plan.js';
import { hashFile } from '../lib/storage/artifact-store.js';
import { embeddedEnv, explain, repoRoot, runLea } from '../test/helpers/lea.js';
import { runOracle } from '../test/helpers/oracle.js';

const CONFIG = 'configs/paper/god-sbj_1.yaml';
const oracles = join(repoRoot, 'test/oracles');
const MINUTE = 60_000;
const GB = 1e9;

/** open_clip's whole ViT-H-14 (text tower included, as open_clip_pytorch_model.bin holds it), torchvision's
 * SWAG ViT-H/14 at 518 px, and the metric networks, each from its package's own constructor (random init). */
const UPSTREAM = String.raw`
import sys, shutil, torch
which, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, sys.argv[3])
from refs import import_torchvision, lpips_alex_heads, random_fid_inception
tv = import_torchvision()
torch.manual_seed(0)
if which == 'open_clip':
    import open_clip
    torch.save(open_clip.create_model('ViT-H-14').state_dict(), f'{out}/open_clip_pytorch_model.bin')
elif which == 'torchvision':
    torch.save(tv.models.vit_h_14(image_size=518).state_dict(), f'{out}/vit_h_14_swag-80465313.pth')
else:
    torch.save(tv.models.alexnet().state_dict(), f'{out}/alexnet-owt-7be5be79.pth')
    shutil.copyfile(lpips_alex_heads(), f'{out}/alex.pth')
    torch.save(random_fid_inception().state_dict(), f'{out}/weights-inception-2015-12-05-6726825d.pth')
`;

const upstream = (which: string) => (out: string) => void runOracle(UPSTREAM, [which, out, oracles]);
const oracle = (script: string, sizes: object) => (out: string) =>
  void runOracle(readFileSync(join(oracles, script), 'utf8'), [out, JSON.stringify(sizes)]);

/**
 * Who writes each kind's file, under its upstream name. Largest first: a file, the importer's temporary copy
 * and the stored copy exist at once, so the big ones go while the store holds least.
 */
const WRITERS: { id: string; files: Record<string, string>; write: (out: string) => void }[] = [
  {
    id: 'open_clip ViT-H-14',
    files: { 'openclip-vit-h14': 'open_clip_pytorch_model.bin' },
    write: upstream('open_clip'),
  },
  {
    id: 'torchvision ViT-H/14 (SWAG)',
    files: { 'torchvision-vit-h14': 'vit_h_14_swag-80465313.pth' },
    write: upstream('torchvision'),
  },
  {
    id: 'MinD-Vis MAE',
    files: { 'mindvis-mae': 'fmri_encoder.pth' },
    // MinD-Vis's own sizes (K: its 4656 voxels), as test/weights-mae.test.ts checks them
    write: oracle('mindvis_mae.py', {
      P: 16,
      D: 1024,
      DEPTH: 24,
      H: 16,
      DD: 512,
      DDEPTH: 8,
      DH: 16,
      K: 4656,
    }),
  },
  {
    id: 'MaskGIT tokenizer and transformer',
    files: { 'maskgit-tokenizer': 'tokenizer.msgpack', 'maskgit-transformer': 'transformer.msgpack' },
    write: oracle('maskgit_flax.py', {
      tokenizer: { ch: 128, mult: [1, 1, 2, 2, 4], nrb: 2, lat: 256, codes: 1024 },
      transformer: { slots: 1000, d: 768, heads: 16, ff: 3072, depth: 24, length: 256 },
    }),
  },
  {
    id: 'AlexNet, LPIPS heads, Inception',
    files: {
      'torchvision-alexnet': 'alexnet-owt-7be5be79.pth',
      'lpips-alex-v0.1': 'alex.pth',
      'fid-inception-v3': 'weights-inception-2015-12-05-6726825d.pth',
    },
    write: upstream('metric-nets'),
  },
];

/** Walks the folder every 200 ms in a worker thread (the main thread blocks in child processes). */
const SAMPLER = `
const { workerData: { dir, shared } } = require('node:worker_threads');
const fs = require('node:fs');
const used = (p) => {
  try {
    const st = fs.lstatSync(p);
    return st.isDirectory() ? fs.readdirSync(p).reduce((s, n) => s + used(p + '/' + n), 0) : st.blocks * 512;
  } catch {
    return 0; // removed while walked
  }
};
setInterval(() => {
  const bytes = BigInt(used(dir));
  Atomics.store(shared, 3, bytes);
  if (bytes > Atomics.load(shared, 0)) {
    Atomics.store(shared, 0, bytes);
    Atomics.store(shared, 1, Atomics.load(shared, 2));
  }
}, 200);
`;

/** Disk allocated under dir (sparse files count what they use): the peak, the step it fell in, the latest. */
function diskSampler(dir: string) {
  // [peak bytes, step index at the peak, current step index, latest bytes]
  const shared = new BigInt64Array(new SharedArrayBuffer(4 * 8));
  const worker = new Worker(SAMPLER, { eval: true, workerData: { dir, shared } });
  worker.unref();
  return {
    step: (i: number) => void Atomics.store(shared, 2, BigInt(i)),
    read: () => ({
      peak: Number(Atomics.load(shared, 0)),
      peakStep: Number(Atomics.load(shared, 1)),
      latest: Number(Atomics.load(shared, 3)),
    }),
    stop: () => worker.terminate(),
  };
}

const fmtSeconds = (s: number) => (s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);

/** The dry run's figures in README's table layout. */
function printPlan(stages: StageEstimate[]): void {
  const rows = stages.map((e) => [
    e.stage,
    e.queue,
    e.parameters === undefined ? '' : `${(e.parameters / 1e6).toFixed(1)} M`,
    e.unit ?? '',
    e.units === undefined ? '' : e.units.toLocaleString('en-US'),
    e.flopsPerUnit === undefined ? '' : (e.flopsPerUnit / 1e9).toFixed(0),
    e.secondsPerUnit === undefined ? '' : e.secondsPerUnit.toFixed(2),
    e.seconds === undefined ? '' : fmtSeconds(e.seconds),
    e.note ?? '',
  ]);
  const head = ['stage', 'queue', 'params', 'unit', 'units', 'GFLOP/unit', 's/unit', 'estimate', 'note'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((v, c) => v.padEnd(widths[c]!)).join('  ');
  for (const r of [head, ...rows]) console.log(line(r).trimEnd());
}

async function main(): Promise<void> {
  const cfg = loadExperimentConfig(join(repoRoot, CONFIG));
  if (cfg.pipeline !== 'reproduction') throw new Error(`${CONFIG} is not a reproduction config`);
  // one network can serve several fields (CLIP: the features and the metrics); it is imported once
  const uses = [...new Map(weightsUses(cfg).map((u) => [u.name, u])).values()];
  const unwritten = uses.filter((u) => !WRITERS.some((w) => u.kind in w.files));
  if (unwritten.length)
    throw new Error(`no writer for ${unwritten.map((u) => `${u.name} (${u.kind})`).join(', ')}`);
  // setup's own output goes to stderr: stdout carries the figures.
  execFileSync('bash', [join(repoRoot, 'scripts/setup.sh')], {
    env: { ...process.env, LEA_SETUP_ORACLES: '1' },
    stdio: ['ignore', 2, 'inherit'],
  });
  const base = Number(
    execFileSync(join(repoRoot, '.tools/venv/bin/python'), [join(repoRoot, 'scripts/free-port-block.py')], {
      encoding: 'utf8',
    }),
  );
  const dir = await mkdtemp(join(os.tmpdir(), 'lea-bench-paper-'));
  const [data, gen, tmp] = ['data', 'gen', 'tmp'].map((d) => join(dir, d)) as [string, string, string];
  const env = {
    ...embeddedEnv(),
    LEA_HOME: join(dir, 'home'),
    LEA_TEMPORAL_PORT: String(base),
    LEA_TEMPORAL_UI_PORT: String(base + 1),
    LEA_S3_PORT: String(base + 10),
    // the importer's temporary copies go under dir too: measured, and removed with it
    TMPDIR: tmp,
  };
  const lea = (args: string[], minutes: number) => {
    const r = runLea(args, env, minutes * MINUTE);
    if (r.code !== 0) throw new Error(`lea ${args.join(' ')}: ${explain(r)}`);
    return r;
  };
  // Ctrl-C reaches the running child too, whose failure unwinds through the finally below; between children
  // the step that ends next stops the run.
  let interrupted = false;
  process.on('SIGINT', () => void (interrupted = true));
  const disk = diskSampler(dir);
  const steps: { step: string; seconds: number }[] = [];
  const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T> => {
    disk.step(steps.length);
    const t0 = performance.now();
    const out = await fn();
    if (interrupted) throw new Error('interrupted');
    steps.push({ step: name, seconds: (performance.now() - t0) / 1e3 });
    console.log(`${name.padEnd(44)} ${steps.at(-1)!.seconds.toFixed(1).padStart(7)} s`);
    return out;
  };
  let dryRun: { backend: { backend: string; device: string; threads: number }; stages: StageEstimate[] };
  let end: number;
  try {
    await mkdir(tmp);
    await step('synthetic GOD world, paper scale', () =>
      lea(['data', 'synth', '--format', 'god', '--scale', 'paper', '--seed', '1', '--out', data], 10),
    );
    const manifest = join(dir, 'god-synthetic.yaml');
    await step('dataset manifest (sha256 of each file)', async () => {
      const files = [];
      for (const name of (await readdir(data)).sort())
        files.push({ name, ...(await hashFile(join(data, name))) });
      writeFileSync(manifest, stringify({ dataset: 'god', baseUrl: `${pathToFileURL(data).href}/`, files }));
    });
    await step('servers (lea dev up)', () => lea(['dev', 'up'], 5));
    for (const w of WRITERS) {
      const mine = uses.filter((u) => u.kind in w.files);
      if (!mine.length) continue;
      await mkdir(gen);
      await step(`write ${w.id}`, () => w.write(gen));
      for (const u of mine) {
        const file = join(gen, w.files[u.kind]!);
        await step(`import ${u.name}`, () =>
          lea(
            ['weights', 'import', '--kind', u.kind, '--from', file, '--name', u.name, '--expect', 'full'],
            30,
          ),
        );
        await rm(file);
      }
      await rm(gen, { recursive: true });
    }
    const r = await step('lea run --dry-run', () =>
      lea(['run', CONFIG, '--dry-run', '--json', '--set', `data.source.manifest=${manifest}`], 60),
    );
    process.stderr.write(r.stderr);
    dryRun = JSON.parse(r.stdout) as typeof dryRun;
    end = disk.read().latest;
  } finally {
    runLea(['dev', 'down'], env);
    await disk.stop();
    await rm(dir, { recursive: true, force: true });
  }

  const { peak, peakStep } = disk.read();
  const total = steps.reduce((s, x) => s + x.seconds, 0);
  console.log(`${'total'.padEnd(44)} ${total.toFixed(1).padStart(7)} s`);
  console.log(
    `disk under the temporary folder: peak ${(peak / GB).toFixed(1)} GB (during ${steps[peakStep]?.step}), ` +
      `${(end / GB).toFixed(1)} GB before removal`,
  );
  const { backend, device, threads } = dryRun.backend;
  console.log(`\nlea run ${CONFIG} --dry-run: backend ${backend} (${device}, ${threads} threads)`);
  printPlan(dryRun.stages);
  const estimated = dryRun.stages.reduce((s, e) => s + (e.seconds ?? 0), 0);
  console.log(`estimated compute: ${fmtSeconds(estimated)}`);

  const machine = {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    node: process.version,
  };
  const out = join(repoRoot, 'bench/results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `paper-dry-run-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        machine,
        config: CONFIG,
        steps,
        disk: { peakBytes: peak, peakStep: steps[peakStep]?.step, endBytes: end },
        dryRun,
      },
      null,
      2,
    ),
  );
  console.log(`wrote ${file}`);
}

await main();
