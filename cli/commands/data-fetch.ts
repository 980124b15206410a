/** `lea data fetch`: download + verify a dataset manifest's files into the artifact store. */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadExperimentConfig } from '../../lib/config/experiment.js';
import { fetchDataset, readDatasetManifest } from '../../lib/data/download.js';
import { writeLock } from '../../lib/data/lock.js';
import { BadInputError } from '../../lib/errors.js';
import { ArtifactStore } from '../../lib/storage/artifact-store.js';
import { ensureServers, settingsFromEnv } from '../context.js';
import { progressBar } from '../progress.js';

/** The manifest (and base URL) a file names: a manifest itself, or a run config whose data source fetches one. */
function manifestOf(file: string): { manifest: string; baseUrl?: string } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new BadInputError(`${file}: cannot read it as YAML (${(err as Error).message.split('\n')[0]})`);
  }
  if (raw && typeof raw === 'object' && 'files' in raw) return { manifest: file };
  const cfg = loadExperimentConfig(file);
  const src = cfg.pipeline === 'reproduction' ? cfg.data.source : undefined;
  if (src?.kind !== 'fetch')
    throw new BadInputError(`${file}: neither a dataset manifest nor a config whose data.source fetches one`);
  return { manifest: src.manifest, ...(src.baseUrl ? { baseUrl: src.baseUrl } : {}) };
}

interface FetchFlags {
  manifest?: string;
  baseUrl?: string;
  recordChecksums?: boolean;
  json?: boolean;
}

export function registerDataFetchCommand(data: Command): void {
  data
    .command('fetch')
    .description('download, verify (size, sha256, format) and store a dataset; a second fetch is a no-op')
    .argument('[file]', 'a dataset manifest (configs/datasets/*.yaml) or a config that fetches one')
    .option('--manifest <file>', 'dataset manifest (the same as giving it as the argument)')
    .option('--base-url <url>', 'folder URL (https://, s3://, file://) holding files that list no url')
    .option(
      '--record-checksums',
      'download files that have no sha256 in the manifest or its lock file and record theirs in <manifest>.lock.yaml (commit it)',
    )
    .option('--json', 'print the result as JSON')
    .action(async (file: string | undefined, opts: FetchFlags) => {
      if ((file === undefined) === (opts.manifest === undefined))
        throw new BadInputError('give a manifest or a config: as the argument or as --manifest, once');
      const named = manifestOf((file ?? opts.manifest)!);
      const source = named.manifest;
      const { manifest, lockFile, lock, unchecked } = readDatasetManifest(source);
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      const bar = progressBar();
      try {
        const result = await fetchDataset(manifest, source, store, {
          cacheDir: join(settings.home, 'downloads'),
          baseUrl: opts.baseUrl ?? named.baseUrl,
          sourceS3: store.s3,
          recordChecksums: opts.recordChecksums === true,
          onProgress: (p) => bar.update(`[${p.fileIndex + 1}/${p.files}] ${p.file}`, p.bytes, p.total),
        });
        bar.done();
        const recorded = result.files.filter((f) => unchecked.includes(f.name) && !lock[f.name]);
        if (recorded.length > 0) {
          const files = { ...lock };
          for (const f of recorded) files[f.name] = { sha256: f.sha256, size: f.size };
          writeLock(lockFile, files, `the files of ${source} that list none`);
        }
        if (opts.json)
          console.log(JSON.stringify({ ...result, recorded: recorded.map((f) => f.name) }, null, 2));
        else {
          console.log(`${result.cached ? 'already stored' : 'stored'}: ${result.ref.key}`);
          if (result.downloaded.length) console.log(`downloaded: ${result.downloaded.join(', ')}`);
          if (recorded.length)
            console.log(`recorded in ${lockFile} (commit it): ${recorded.map((f) => f.name).join(', ')}`);
        }
      } finally {
        store.s3.destroy();
      }
    });
}
