/**
 * `lea weights fetch`: a catalogue entry (lib/weights/catalogue.ts) downloaded through the verified downloader,
 * checked against the checksum its publisher gives (a prefix as a prefix) or the one a first download recorded
 * in the lock file, then imported as `lea weights import` imports a local file.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { downloadFile } from '../data/download.js';
import { readLock, writeLock } from '../data/lock.js';
import { BadInputError } from '../errors.js';
import type { MaskGitNumerics } from '../models/maskgit-numerics.js';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { CatalogueEntry } from './catalogue.js';
import { importWeights, type WeightsRecord } from './import.js';

export interface FetchWeightsRequest {
  entry: CatalogueEntry;
  /** Replaces the entry's URL (a mirror, or the link of a file that has no public URL). */
  url?: string;
  /** Store under this name instead of the entry's. */
  name?: string;
  /** The lock file of checksums recorded by first downloads (keyed by catalogue name). */
  lockFile: string;
  /** Record the full sha256 of a file whose publisher gives none, or only a prefix, in the lock file. */
  recordChecksums: boolean;
  /** MaskGIT's numerics for the MaskGIT kinds (lea weights import --numerics). */
  numerics?: MaskGitNumerics;
  overwrite?: boolean;
  downloadDir: string;
  log?: (line: string) => void;
}

export async function fetchWeights(
  store: ArtifactStore,
  req: FetchWeightsRequest,
): Promise<{ record: WeightsRecord; recorded: boolean }> {
  const { entry } = req;
  const url = req.url ?? entry.url;
  if (!url)
    throw new BadInputError(`weights '${entry.name}' have no known public URL: pass --url (${entry.source})`);
  const lock = readLock(req.lockFile);
  const locked = lock[entry.name];
  const published =
    entry.checksum && ('sha256' in entry.checksum ? entry.checksum.sha256 : entry.checksum.sha256Prefix);
  const expected = locked?.sha256 ?? published ?? null;
  if (expected === null && !req.recordChecksums) {
    throw new BadInputError(
      `weights '${entry.name}': no sha256 is published for ${entry.file} and ${req.lockFile} records none, so a ` +
        `download could not be verified: fetch once with --record-checksums from a source you trust (commit the lock file)`,
    );
  }
  const dest = join(req.downloadDir, 'weights', entry.name, entry.file);
  try {
    req.log?.(`downloading ${url}`);
    const got = await downloadFile(
      { name: entry.file, url, sha256: expected, ...(locked ? { size: locked.size } : {}) },
      dest,
      { sourceS3: store.s3 },
    );
    const { record } = await importWeights(store, {
      kind: entry.kind,
      from: dest,
      name: req.name ?? entry.name,
      sha256: got.sha256,
      expectFull: entry.expectFull,
      ...(req.numerics ? { numerics: req.numerics } : {}),
      overwrite: req.overwrite === true,
      downloadDir: req.downloadDir,
      ...(req.log ? { log: req.log } : {}),
    });
    // A published full sha256 needs no lock entry; a prefix or none does, once asked for.
    const recorded = req.recordChecksums && !locked && !(entry.checksum && 'sha256' in entry.checksum);
    if (recorded) {
      writeLock(
        req.lockFile,
        { ...lock, [entry.name]: { sha256: got.sha256, size: got.size } },
        'upstream networks (lea weights fetch)',
      );
    }
    return { record, recorded };
  } finally {
    await rm(dest, { force: true });
  }
}
