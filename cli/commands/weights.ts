/**
 * `lea weights fetch|import|list|show`: upstream networks (MaskGIT's tokenizer and transformer, open_clip
 * ViT-H/14, torchvision's ViT-H/14, MinD-Vis's MAE, the metrics' networks) fetched from the catalogue or imported
 * from a file, once, into the artifact store as `weights/<name>`, and `lea embed`, which runs an imported network
 * on images.
 */
import { Option, type Command } from 'commander';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCompute } from '../../lib/compute/backend.js';
import { MASKGIT_NUMERICS } from '../../lib/config/choice-values.js';
import { BadInputError } from '../../lib/errors.js';
import type { MaskGitNumerics } from '../../lib/models/maskgit-numerics.js';
import type { ImageBatch } from '../../lib/models/image-features.js';
import { ArtifactStore } from '../../lib/storage/artifact-store.js';
import { readNpy, writeNpy } from '../../lib/tensors/npy.js';
import { CATALOGUE, catalogueEntry, type CatalogueEntry } from '../../lib/weights/catalogue.js';
import { fetchWeights } from '../../lib/weights/fetch.js';
import { WEIGHT_KINDS, weightKind } from '../../lib/weights/kinds/index.js';
import {
  importWeights,
  listWeights,
  loadWeights,
  weightsRecord,
  type WeightsRecord,
} from '../../lib/weights/import.js';
import { positiveInt } from '../args.js';
import { ensureServers, settingsFromEnv } from '../context.js';

async function withStore<T>(fn: (store: ArtifactStore, home: string) => Promise<T>): Promise<T> {
  const settings = settingsFromEnv();
  await ensureServers(settings);
  const store = ArtifactStore.fromSettings(settings.s3);
  try {
    return await fn(store, settings.home);
  } finally {
    store.s3.destroy();
  }
}

function describe(r: WeightsRecord): string {
  const lines = [
    `${r.name}: ${r.kind} (mapping v${r.mappingVersion}), ${r.parameters.toLocaleString('en-US')} parameters in ${r.tensors} tensors`,
    `  source: ${r.source.file} (${r.source.format}, ${r.source.size} bytes, sha256 ${r.source.sha256})`,
    `  config: ${JSON.stringify(r.config)}`,
    `  notes: ${Object.entries(r.notes)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(', ')}`,
    `  unused source tensors: ${r.unused.count}${r.unused.count ? ` (${r.unused.names.slice(0, 8).join(', ')}${r.unused.count > 8 ? ', ...' : ''})` : ''}`,
    `  full-size check: ${r.checkedFullSize ? 'passed' : 'not asked (--expect full)'}`,
  ];
  return lines.join('\n');
}

interface ImportFlags {
  kind: string;
  from: string;
  name: string;
  sha256?: string;
  expect?: string;
  heads?: number;
  groups?: number;
  numerics?: MaskGitNumerics;
  force?: boolean;
  json?: boolean;
}

interface FetchFlags {
  list?: boolean;
  url?: string;
  name?: string;
  lock: string;
  recordChecksums?: boolean;
  numerics?: MaskGitNumerics;
  force?: boolean;
  json?: boolean;
}

function describeEntry(e: CatalogueEntry): string {
  const checksum = !e.checksum
    ? 'no published sha256'
    : 'sha256' in e.checksum
      ? `sha256 ${e.checksum.sha256}`
      : `sha256 prefix ${e.checksum.sha256Prefix}`;
  return [
    `${e.name}: ${e.kind}${e.expectFull ? ' (--expect full)' : ''}, ${checksum}`,
    `  url: ${e.url ?? '(none known: pass --url)'}`,
    `  source: ${e.source}`,
  ].join('\n');
}

interface EmbedFlags {
  weights: string;
  images: string;
  out: string;
  output?: string;
  tokens?: boolean;
  reconstruct?: boolean;
}

async function readImages(path: string): Promise<ImageBatch> {
  const arr = await readNpy(path);
  if (arr.dtype !== 'uint8' || arr.shape.length !== 4 || arr.shape[3] !== 3) {
    throw new BadInputError(
      `--images ${path}: expected uint8 [N, H, W, 3], got ${arr.dtype} [${arr.shape.join(', ')}]`,
    );
  }
  const [count, height, width] = arr.shape as [number, number, number];
  return { data: arr.data as Uint8Array, count, height, width };
}

/** MaskGIT's numerics, which the tokenizer and transformer files do not store (lib/models/maskgit-numerics.ts). */
function numericsOption(): Option {
  return new Option(
    '--numerics <choice>',
    "MaskGIT kinds: compute as LEA's PyTorch port (GroupNorm and embedding LayerNorm eps 1e-5, exact GELU; " +
      "the paper's numbers) or as MaskGIT's Flax code (eps 1e-6 and 1e-12, tanh GELU); default lea-port",
  ).choices(MASKGIT_NUMERICS);
}

export function registerWeightsCommands(program: Command): void {
  const weights = program.command('weights').description('import and inspect upstream pretrained networks');
  weights
    .command('fetch')
    .description('download a network the paper configs name from the catalogue, verify it and import it')
    .argument('[name]', `one of ${CATALOGUE.map((e) => e.name).join(', ')}`)
    .option('--list', 'print the catalogue: each network, its URL, checksum and where they come from')
    .option(
      '--url <url>',
      'download from here instead (https://, s3://, file://): a mirror, or a file with no public URL',
    )
    .option('--name <name>', "store under this name instead of the catalogue's")
    .option('--lock <file>', 'checksums recorded by first downloads', 'configs/weights.lock.yaml')
    .option(
      '--record-checksums',
      'record the full sha256 of a file whose publisher gives none, or a prefix, in the lock file (commit it)',
    )
    .addOption(numericsOption())
    .option('--force', 'replace weights of that name made from a different file')
    .option('--json', 'print the stored record (with --list: the catalogue) as JSON')
    .action(async (name: string | undefined, flags: FetchFlags) => {
      if (flags.list) {
        console.log(
          flags.json ? JSON.stringify(CATALOGUE, null, 2) : CATALOGUE.map(describeEntry).join('\n'),
        );
        return;
      }
      if (name === undefined) throw new BadInputError('name a network (lea weights fetch --list)');
      const entry = catalogueEntry(name);
      if (!entry) {
        throw new BadInputError(
          `'${name}' is not in the catalogue: one of ${CATALOGUE.map((e) => e.name).join(', ')} (or lea weights import)`,
        );
      }
      await withStore(async (store, home) => {
        const { record, recorded } = await fetchWeights(store, {
          entry,
          ...(flags.url ? { url: flags.url } : {}),
          ...(flags.name ? { name: flags.name } : {}),
          lockFile: flags.lock,
          recordChecksums: flags.recordChecksums === true,
          ...(flags.numerics ? { numerics: flags.numerics } : {}),
          overwrite: flags.force === true,
          downloadDir: join(home, 'downloads'),
          log: (line) => console.error(`lea: ${line}`),
        });
        if (flags.json) console.log(JSON.stringify(record, null, 2));
        else console.log(`stored weights/${record.name}\n${describe(record)}`);
        if (recorded) console.error(`lea: recorded the sha256 of ${entry.file} in ${flags.lock} (commit it)`);
      });
    });
  weights
    .command('import')
    .description('map an upstream checkpoint onto the project layouts and store it as weights/NAME')
    .requiredOption('--kind <kind>', `one of ${[...WEIGHT_KINDS.keys()].join(', ')}`)
    .requiredOption('--from <file|url>', 'the upstream file (.pth, Flax msgpack, .safetensors) or its URL')
    .requiredOption('--name <name>', 'name to store it under (configs refer to it)')
    .option('--sha256 <hex>', 'expected sha256 of the file (required for a URL)')
    .option('--expect <size>', "'full': also check the published full-size architecture")
    .option(
      '--heads <n>',
      "attention heads (not stored in the files; default: the kind's published head width)",
      positiveInt,
    )
    .option(
      '--groups <n>',
      'GroupNorm groups of a VQGAN (not stored in the file; default 32, as MaskGIT)',
      positiveInt,
    )
    .addOption(numericsOption())
    .option('--force', 'replace weights of that name made from a different file')
    .option('--json', 'print the stored record as JSON')
    .action(async (flags: ImportFlags) => {
      if (flags.expect !== undefined && flags.expect !== 'full') {
        throw new BadInputError(`--expect must be 'full', got '${flags.expect}'`);
      }
      if (flags.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(flags.sha256)) {
        throw new BadInputError(`--sha256 must be 64 hex digits, got '${flags.sha256}'`);
      }
      weightKind(flags.kind);
      await withStore(async (store, home) => {
        const { record } = await importWeights(store, {
          kind: flags.kind,
          from: flags.from,
          name: flags.name,
          ...(flags.sha256 ? { sha256: flags.sha256 } : {}),
          ...(flags.heads ? { heads: flags.heads } : {}),
          ...(flags.groups ? { groups: flags.groups } : {}),
          ...(flags.numerics ? { numerics: flags.numerics } : {}),
          expectFull: flags.expect === 'full',
          overwrite: flags.force === true,
          downloadDir: join(home, 'downloads'),
          log: (line) => console.error(`lea: ${line}`),
        });
        if (flags.json) console.log(JSON.stringify(record, null, 2));
        else console.log(`stored weights/${record.name}\n${describe(record)}`);
      });
    });
  weights
    .command('list')
    .description('imported networks')
    .option('--json', 'print the records as JSON')
    .action(async (flags: { json?: boolean }) => {
      await withStore(async (store) => {
        const all = await listWeights(store);
        if (flags.json) console.log(JSON.stringify(all, null, 2));
        else if (all.length === 0) console.log('no weights imported (lea weights import --help)');
        else
          for (const r of all)
            console.log(`${r.name}\t${r.kind}\t${r.parameters} parameters\t${r.source.sha256.slice(0, 12)}`);
      });
    });
  weights
    .command('show')
    .description('one imported network: source, architecture, mapping notes, unused tensors')
    .argument('<name>')
    .option('--json', 'print the record as JSON')
    .action(async (name: string, flags: { json?: boolean }) => {
      await withStore(async (store) => {
        const r = await weightsRecord(store, name);
        if (!r) throw new BadInputError(`weights '${name}' are not imported (lea weights list)`);
        console.log(flags.json ? JSON.stringify(r, null, 2) : describe(r));
      });
    });

  program
    .command('embed')
    .description('run an imported network on uint8 images [N, H, W, 3] through its own preprocessing')
    .requiredOption('--weights <name>', 'imported weights (lea weights list)')
    .requiredOption('--images <file>', 'uint8 images, .npy [N, H, W, 3]')
    .requiredOption('--out <file>', 'output .npy')
    .option('--output <name>', "the network's output to write (default: its first)")
    .option('--tokens', 'VQGAN token ids (same as --output tokens)')
    .option('--reconstruct', 'VQGAN reconstructions (same as --output reconstruct)')
    .action(async (flags: EmbedFlags) => {
      const picked = [
        flags.output,
        flags.tokens ? 'tokens' : undefined,
        flags.reconstruct ? 'reconstruct' : undefined,
      ].filter((x) => x !== undefined);
      if (picked.length > 1) throw new BadInputError(`give one of --output, --tokens, --reconstruct`);
      const images = await readImages(flags.images);
      await initCompute();
      await withStore(async (store) => {
        const scratch = await mkdtemp(join(tmpdir(), 'lea-embed-'));
        try {
          const { record, tensors } = await loadWeights(store, flags.weights, scratch);
          const kind = weightKind(record.kind);
          if (!kind.build)
            throw new BadInputError(`weights '${flags.weights}' (${kind.name}) are not an image network`);
          const net = kind.build(tensors, record.config);
          try {
            const names = Object.keys(net.outputs);
            const output = picked[0] ?? names[0]!;
            const run = net.outputs[output];
            if (!run)
              throw new BadInputError(`${kind.name} has no output '${output}': one of ${names.join(', ')}`);
            const result = await run(images);
            await writeNpy(flags.out, result);
            console.log(`wrote ${flags.out}: ${output} ${result.dtype} [${result.shape.join(', ')}]`);
          } finally {
            net.dispose();
          }
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
      });
    });
}
