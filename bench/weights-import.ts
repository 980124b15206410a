/**
 * `node --import tsx bench/weights-import.ts [--keep]`: peak memory and time of importing an open_clip-format
 * checkpoint of more than 1 GB in which the image tower is about a third (the real ViT-H-14 file is 3.9 GB with
 * a 2.5 GB tower). The file is a reduced open_clip model with random weights (a 12-layer 896-wide visual, a 1024-wide text
 * tower), written once by open_clip + torch.save from the oracle venv into .tools/bench-cache/. A child process
 * runs the import exactly as `lea weights import` does before storing (sha256 of the file, lazy read of the
 * visual tensors, mapping, safetensors written) and reports its peak RSS. Target: peak RSS below the image
 * tower's size plus 300 MB. Prints a table and writes JSON to bench/results/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashFile } from '../lib/storage/artifact-store.js';
import { writeSafetensors } from '../lib/tensors/safetensors.js';
import { openclipVitH14Kind } from '../lib/weights/kinds/openclip-vit-h14.js';
import { openCheckpoint } from '../lib/weights/open.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const MB = 1024 * 1024;
const SLACK_MB = 300;

const MAKE = String.raw`
import sys, torch
sys.path.insert(0, sys.argv[2])
from refs import import_torchvision
import_torchvision()  # open_clip imports torchvision, whose PyPI build needs this beside CPU torch
import open_clip
from open_clip import factory
factory._MODEL_CONFIGS['bench-import'] = {
    'embed_dim': 768,
    'vision_cfg': {'image_size': 224, 'layers': 12, 'width': 896, 'head_width': 64, 'patch_size': 14},
    'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 1024, 'heads': 16, 'layers': 12},
}
torch.manual_seed(0)
m = open_clip.create_model('bench-import')
sd = m.state_dict()
visual = sum(v.numel() * v.element_size() for k, v in sd.items() if k.startswith('visual.'))
torch.save(sd, sys.argv[1])
print(visual)
`;

/** The child: the import's work up to the upload, then its own peak RSS. */
async function child(file: string): Promise<void> {
  const t0 = performance.now();
  await hashFile(file);
  const tHash = performance.now();
  const src = await openCheckpoint(file);
  const imported = await openclipVitH14Kind.importFrom(src, { heads: 14 });
  await src.close();
  const dir = await mkdtemp(join(os.tmpdir(), 'lea-bench-import-'));
  try {
    await writeSafetensors(join(dir, 'weights.safetensors'), imported.tensors);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const end = performance.now();
  console.log(
    JSON.stringify({
      seconds: (end - t0) / 1000,
      hashSeconds: (tHash - t0) / 1000,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
      tensors: imported.tensors.size,
      unused: imported.unused.length,
    }),
  );
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return child(process.argv[3]!);
  execFileSync('bash', [join(root, 'scripts/setup.sh')], {
    env: { ...process.env, LEA_SETUP_ORACLES: '1' },
    stdio: ['ignore', 2, 'inherit'],
  });
  const cache = join(root, '.tools/bench-cache');
  mkdirSync(cache, { recursive: true });
  const file = join(cache, 'openclip-bench-import.pth');
  const visualFile = `${file}.visual-bytes`;
  if (!existsSync(file) || !existsSync(visualFile)) {
    console.error('bench: writing the open_clip-format checkpoint (once)...');
    const out = execFileSync(
      join(root, '.tools/oracle-venv/bin/python'),
      ['-c', MAKE, file, join(root, 'test/oracles')],
      {
        encoding: 'utf8',
      },
    );
    writeFileSync(visualFile, out.trim());
  }
  const visualMB = Number(execFileSync('cat', [visualFile], { encoding: 'utf8' })) / MB;
  const fileMB = statSync(file).size / MB;
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', file],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
    seconds: number;
    hashSeconds: number;
    peakRssMB: number;
  };
  const limit = visualMB + SLACK_MB;
  const rows: [string, string][] = [
    ['checkpoint file', `${fileMB.toFixed(0)} MB`],
    [
      'image tower (visual.*)',
      `${visualMB.toFixed(0)} MB (${((100 * visualMB) / fileMB).toFixed(0)} % of the file)`,
    ],
    [
      'import time (hash + read + map + write)',
      `${r.seconds.toFixed(1)} s (sha256 ${r.hashSeconds.toFixed(1)} s)`,
    ],
    ['peak RSS of the importing process', `${r.peakRssMB.toFixed(0)} MB`],
    ['target: tower + 300 MB', `${limit.toFixed(0)} MB: ${r.peakRssMB <= limit ? 'met' : 'NOT met'}`],
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(42)} ${v}`);
  mkdirSync(join(root, 'bench/results'), { recursive: true });
  writeFileSync(
    join(root, 'bench/results', `weights-import-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    JSON.stringify({ fileMB, visualMB, ...r, limitMB: limit }, null, 2),
  );
}

await main();
