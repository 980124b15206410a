/**
 * Retention (`lea gc`, and a worker's scratch limit): what may be removed without taking anything from a run
 * that is running or could be resumed.
 *
 * Scratch folders are LEA_HOME/work/<run>/<stage>-attempt<N>, each with an `.owner` file holding the pid of
 * the worker process that made it: an attempt has finished once that process is gone (or, for the worker
 * itself, once it no longer runs the attempt). Checkpoints are artifacts `checkpoints/<impl>/<cacheKey>`
 * `[/forced-<run>]/step-<N>`: those of a stage whose output is stored (a forced run's: once that run is neither
 * running nor resumable) are kept only as the newest N; any other stage may still be resumed, so all stay.
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactStore } from '../storage/artifact-store.js';
import type { RunStatus } from './run-record.js';

export const OWNER_FILE = '.owner';

export interface ScratchFolder {
  path: string;
  runId: string;
  bytes: number;
  mtimeMs: number;
  /** pid of the worker process that made it (absent in folders older than the owner file). */
  owner?: number;
}

async function folderBytes(path: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(path, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (e.isFile()) total += (await stat(join(e.parentPath, e.name)).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

export async function scratchFolders(home: string): Promise<ScratchFolder[]> {
  const root = join(home, 'work');
  const out: ScratchFolder[] = [];
  for (const run of await readdir(root).catch(() => [])) {
    for (const name of await readdir(join(root, run)).catch(() => [])) {
      const path = join(root, run, name);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isDirectory()) continue;
      const owner = Number((await readFile(join(path, OWNER_FILE), 'utf8').catch(() => '')).trim());
      out.push({
        path,
        runId: run,
        bytes: await folderBytes(path),
        mtimeMs: info.mtimeMs,
        ...(owner > 0 ? { owner } : {}),
      });
    }
  }
  return out;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes a scratch folder, and its run's folder once empty. */
async function removeScratch(f: ScratchFolder): Promise<void> {
  await rm(f.path, { recursive: true, force: true });
  const run = join(f.path, '..');
  if ((await readdir(run).catch(() => ['?'])).length === 0) await rm(run, { recursive: true, force: true });
}

/**
 * A worker's scratch limit: removes finished attempts' folders (its own that it no longer runs, and those of
 * worker processes that are gone), oldest first, until all scratch folders together fit in maxBytes.
 */
export async function trimScratch(
  home: string,
  maxBytes: number,
  active: ReadonlySet<string>,
): Promise<string[]> {
  const folders = await scratchFolders(home);
  let total = folders.reduce((t, f) => t + f.bytes, 0);
  const finished = folders
    .filter(
      (f) =>
        f.owner !== undefined && (f.owner === process.pid ? !active.has(f.path) : !processAlive(f.owner)),
    )
    .sort((a, b) => a.mtimeMs - b.mtimeMs);
  const removed: string[] = [];
  for (const f of finished) {
    if (total <= maxBytes) break;
    await removeScratch(f);
    total -= f.bytes;
    removed.push(f.path);
  }
  return removed;
}

export interface CheckpointGroup {
  /** `checkpoints/<impl>/<cacheKey>` or `.../forced-<run>` */
  prefix: string;
  impl: string;
  cacheKey: string;
  forcedRun?: string;
  /** Artifact keys, oldest step first. */
  keys: string[];
}

const CHECKPOINT = /^checkpoints\/([^/]+)\/([^/]+)(?:\/forced-([^/]+))?\/step-(\d{9})$/;

export function groupCheckpoints(keys: string[]): CheckpointGroup[] {
  const groups = new Map<string, CheckpointGroup & { steps: number[] }>();
  for (const key of keys) {
    const m = CHECKPOINT.exec(key);
    if (!m) continue;
    const prefix = key.slice(0, key.lastIndexOf('/'));
    const g = groups.get(prefix) ?? {
      prefix,
      impl: m[1]!,
      cacheKey: m[2]!,
      ...(m[3] ? { forcedRun: m[3] } : {}),
      keys: [],
      steps: [],
    };
    g.keys.push(key);
    g.steps.push(Number(m[4]));
    groups.set(prefix, g);
  }
  return [...groups.values()].map(({ steps, ...g }) => ({
    ...g,
    keys: g.keys
      .map((k, i) => [k, steps[i]!] as const)
      .sort((a, b) => a[1] - b[1])
      .map(([k]) => k),
  }));
}

/** Runs whose checkpoints must stay whole: running, or failed or cancelled and so resumable (`lea resume`). */
export const NEEDS_CHECKPOINTS: ReadonlySet<RunStatus> = new Set(['running', 'failed', 'cancelled']);

export interface GcOptions {
  /** Checkpoints kept per completed stage (the newest ones). */
  keep: number;
  dryRun: boolean;
  /** A run's status (`unknown` when Temporal does not know it). */
  runStatus: (runId: string) => Promise<RunStatus>;
}

export interface GcResult {
  scratch: { removed: string[]; bytes: number };
  checkpoints: { removed: string[]; blobs: number; bytes: number };
}

export async function collectGarbage(store: ArtifactStore, home: string, o: GcOptions): Promise<GcResult> {
  const status = new Map<string, RunStatus>();
  const runStatus = async (runId: string) => {
    if (!status.has(runId)) status.set(runId, await o.runStatus(runId));
    return status.get(runId)!;
  };

  const scratch: GcResult['scratch'] = { removed: [], bytes: 0 };
  for (const f of await scratchFolders(home)) {
    // Without an owner file the run's state decides: a running run's attempt may be at work in it.
    const finished =
      f.owner !== undefined ? !processAlive(f.owner) : (await runStatus(f.runId)) !== 'running';
    if (!finished) continue;
    if (!o.dryRun) await removeScratch(f);
    scratch.removed.push(f.path);
    scratch.bytes += f.bytes;
  }

  const doomed: string[] = [];
  for (const g of groupCheckpoints(await store.list('checkpoints/'))) {
    const done = g.forcedRun
      ? !NEEDS_CHECKPOINTS.has(await runStatus(g.forcedRun))
      : await store.exists(`cache/${g.impl}/${g.cacheKey}`);
    if (done) doomed.push(...g.keys.slice(0, Math.max(0, g.keys.length - o.keep)));
  }
  const deleted = await store.deleteArtifacts(doomed, { dryRun: o.dryRun });
  return { scratch, checkpoints: { removed: doomed, blobs: deleted.blobs, bytes: deleted.bytes } };
}
