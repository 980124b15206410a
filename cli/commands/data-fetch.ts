/** `lea data fetch`: download + verify a dataset manifest's files into the artifact store. */
import type { Command } from 'commander';
import { join } from 'node:path';
import { fetchDataset, loadDatasetManifest } from '../../lib/data/download.js';
import { ArtifactStore } from '../../lib/storage/artifact-store.js';
import { ensureServers, settingsFromEnv } from '../context.js';
import { progressBar } from '../progress.js';

export function registerDataFetchCommand(data: Command): void {
  data
    .command('fetch')
    .description('download, verify (size, sha256, format) and store a dataset; a second fetch is a no-op')
    .requiredOption('--manifest <file>', 'dataset manifest (configs/datasets/*.yaml)')
    .option('--base-url <url>', 'folder URL (https://, s3://, file://) holding files that list no url')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { manifest: string; baseUrl?: string; json?: boolean }) => {
      const manifest = loadDatasetManifest(opts.manifest);
      const settings = settingsFromEnv();
      await ensureServers(settings);
      const store = ArtifactStore.fromSettings(settings.s3);
      const bar = progressBar();
      try {
        const result = await fetchDataset(manifest, opts.manifest, store, {
          cacheDir: join(settings.home, 'downloads'),
          baseUrl: opts.baseUrl,
          sourceS3: store.s3,
          onProgress: (p) => bar.update(`[${p.fileIndex + 1}/${p.files}] ${p.file}`, p.bytes, p.total),
        });
        bar.done();
        if (opts.json) console.log(JSON.stringify(result, null, 2));
        else {
          console.log(`${result.cached ? 'already stored' : 'stored'}: ${result.ref.key}`);
          if (result.downloaded.length) console.log(`downloaded: ${result.downloaded.join(', ')}`);
        }
      } finally {
        store.s3.destroy();
      }
    });
}
