/**
 * Importing an upstream network: verify the file (sha256), read it without executing anything, map it through
 * its kind, check it, and store it as the artifact `weights/<name>`: one safetensors file in the project's
 * layouts whose metadata (and the artifact manifest) carry the provenance. Nothing is stored unless every
 * check passed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { BadInputError, IntegrityError } from '../errors.js';
import { downloadFile } from '../data/download.js';
import { WEIGHTS_FORMAT, type ImportedWeights, type WeightsRecord } from '../models/types.js';
import { checkKey, hashFile, type ArtifactRef, type ArtifactStore } from '../storage/artifact-store.js';
import type { NdArray } from '../tensors/ndarray.js';
import { readSafetensors, writeSafetensors } from '../tensors/safetensors.js';
import type { ImportOptions, WeightKind } from './kind.js';
import { weightKind } from './kinds/index.js';
import { openCheckpoint } from './open.js';
import { formatFamily } from './source.js';

export type { WeightsRecord } from '../models/types.js';

const WEIGHTS_FILE = 'weights.safetensors';
/** At most this many unused source tensor names are kept in the record (open_clip's text tower has ~400). */
const UNUSED_LISTED = 50;

export interface ImportRequest extends ImportOptions {
  kind: string;
  /** A local path or an https://, s3:// or file:// URL (downloaded with resume; needs sha256). */
  from: string;
  name: string;
  sha256?: string;
  expectFull?: boolean;
  /** Replace an existing artifact of that name made from a different file. */
  overwrite?: boolean;
  /** Where URL downloads are kept between attempts. */
  downloadDir: string;
  log?: (line: string) => void;
}

export function weightsKey(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new BadInputError(
      `--name '${name}': use letters, digits and ._- (starting with a letter or digit)`,
    );
  }
  return checkKey(`weights/${name}`);
}

function isUrl(s: string): boolean {
  return /^(https?|s3|file):\/\//.test(s);
}

/** The file to read: a local path as is, a URL downloaded (resumable, verified) into downloadDir. */
async function localSource(req: ImportRequest): Promise<string> {
  if (!isUrl(req.from)) return req.from;
  if (!req.sha256)
    throw new BadInputError(`--from ${req.from}: a URL needs --sha256 so the download can be verified`);
  const dest = join(req.downloadDir, `${req.sha256}-${basename(new URL(req.from).pathname) || 'weights'}`);
  await downloadFile({ name: basename(dest), url: req.from, sha256: req.sha256 }, dest);
  return dest;
}

function checkFullSize(kind: WeightKind, config: Record<string, unknown>, file: string): void {
  const wrong = Object.entries(kind.fullSize)
    .filter(([k, v]) => JSON.stringify(config[k]) !== JSON.stringify(v))
    .map(([k, v]) => `${k} is ${JSON.stringify(config[k])}, the published network has ${JSON.stringify(v)}`);
  if (wrong.length > 0) {
    throw new BadInputError(`${file}: --expect full: not the full-size ${kind.name}: ${wrong.join('; ')}`);
  }
}

/** The options of the request that the kind reads; one it does not read is refused, naming its flag. */
function importOptions(kind: WeightKind, req: ImportRequest): ImportOptions {
  const given: ImportOptions = {
    ...(req.heads === undefined ? {} : { heads: req.heads }),
    ...(req.groups === undefined ? {} : { groups: req.groups }),
    ...(req.numerics === undefined ? {} : { numerics: req.numerics }),
  };
  const stray = (Object.keys(given) as (keyof ImportOptions)[]).filter((k) => !kind.options.includes(k));
  if (stray.length > 0) {
    const reads = kind.options.length ? kind.options.map((k) => `--${k}`).join(', ') : 'none of them';
    throw new BadInputError(
      `${stray.map((k) => `--${k}`).join(', ')} does not apply to --kind ${kind.name} (it reads ${reads})`,
    );
  }
  return given;
}

function parameterCount(tensors: Map<string, NdArray>): number {
  let n = 0;
  for (const t of tensors.values()) n += t.data.length;
  return n;
}

export async function importWeights(
  store: ArtifactStore,
  req: ImportRequest,
): Promise<{ ref: ArtifactRef; record: WeightsRecord }> {
  const key = weightsKey(req.name);
  const kind = weightKind(req.kind);
  const opts = importOptions(kind, req);
  const log = req.log ?? (() => {});
  const file = await localSource(req);
  log(`hashing ${file}`);
  const { sha256, size } = await hashFile(file);
  if (req.sha256 && req.sha256.toLowerCase() !== sha256) {
    throw new IntegrityError(`${file}: sha256 is ${sha256}, --sha256 says ${req.sha256}`);
  }
  const src = await openCheckpoint(file, kind.entry === undefined ? {} : { entry: kind.entry });
  let imported;
  try {
    if (!kind.formats.includes(formatFamily(src.format))) {
      throw new BadInputError(
        `${file}: a ${src.format} file, but ${kind.name} comes as ${kind.formats.join(' or ')}`,
      );
    }
    log(`mapping ${src.tensors.size} tensors as ${kind.name}`);
    imported = await kind.importFrom(src, opts);
  } finally {
    await src.close();
  }
  if (req.expectFull) checkFullSize(kind, imported.config, file);

  const record: WeightsRecord = {
    format: WEIGHTS_FORMAT,
    name: req.name,
    kind: kind.name,
    mappingVersion: kind.mappingVersion,
    source: { file: isUrl(req.from) ? req.from : basename(file), sha256, size, format: src.format },
    config: imported.config,
    notes: imported.notes,
    parameters: parameterCount(imported.tensors),
    tensors: imported.tensors.size,
    unused: { count: imported.unused.length, names: imported.unused.slice(0, UNUSED_LISTED) },
    checkedFullSize: req.expectFull === true,
  };
  const dir = await mkdtemp(join(tmpdir(), 'lea-weights-'));
  try {
    const out = join(dir, WEIGHTS_FILE);
    await writeSafetensors(out, imported.tensors, { format: WEIGHTS_FORMAT, record: JSON.stringify(record) });
    imported.tensors.clear();
    log(`storing ${key}`);
    const ref = await store.put(
      key,
      [{ path: WEIGHTS_FILE, fromFile: out }],
      { weights: record },
      {
        ...(req.overwrite ? { overwrite: true } : {}),
      },
    );
    return { ref, record };
  } catch (err) {
    if (err instanceof IntegrityError && /already exists/.test(err.message)) {
      throw new BadInputError(
        `weights '${req.name}' already exist from a different file (lea weights show ${req.name}); pass --force to replace them`,
      );
    }
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The record of an imported network, from its manifest (undefined when not imported). */
export async function weightsRecord(store: ArtifactStore, name: string): Promise<WeightsRecord | undefined> {
  const m = await store.manifest(weightsKey(name));
  return m?.meta.weights as WeightsRecord | undefined;
}

export async function listWeights(store: ArtifactStore): Promise<WeightsRecord[]> {
  const out: WeightsRecord[] = [];
  for (const key of await store.list('weights/')) {
    const rec = (await store.manifest(key))?.meta.weights as WeightsRecord | undefined;
    if (rec) out.push(rec);
  }
  return out;
}

/** What to say when a config names weights that were never imported. */
export function missingWeights(name: string, kind = 'KIND'): string {
  return `weights '${name}' are not imported: run lea weights import --kind ${kind} --from FILE --name ${name}`;
}

/** The record of weights a config names, checked to be of the kind the config needs them as. */
export async function requireWeights(
  store: ArtifactStore,
  name: string,
  kind: string,
  field: string,
): Promise<WeightsRecord> {
  const rec = await weightsRecord(store, name);
  if (!rec) throw new BadInputError(`${field}: ${missingWeights(name, kind)}`);
  if (rec.kind !== kind) {
    throw new BadInputError(
      `${field}: weights '${name}' are ${rec.kind}, not ${kind} (lea weights show ${name})`,
    );
  }
  return rec;
}

/** An imported network's tensors and record, read from the store (the file goes through `scratch`). */
export async function loadWeights(
  store: ArtifactStore,
  name: string,
  scratch: string,
): Promise<ImportedWeights> {
  const key = weightsKey(name);
  if (!(await store.exists(key))) {
    throw new BadInputError(
      `weights '${name}' are not imported: run lea weights import --kind KIND --from FILE --name ${name}`,
    );
  }
  const path = join(scratch, `${name}.safetensors`);
  await store.downloadFile(key, WEIGHTS_FILE, path);
  return readWeightsFile(path);
}

/** An imported network's file (a stage input's `weights.safetensors`), checked to be of `kind` when given. */
export async function readWeightsFile(path: string, kind?: string): Promise<ImportedWeights> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== WEIGHTS_FORMAT || !metadata.record) {
    throw new BadInputError(`${path}: not a ${WEIGHTS_FORMAT} file`);
  }
  const record = JSON.parse(metadata.record) as WeightsRecord;
  if (kind && record.kind !== kind) {
    throw new BadInputError(
      `weights '${record.name}' are ${record.kind}, not ${kind} (lea weights show ${record.name})`,
    );
  }
  return { path, record, tensors };
}

/** The local file of a stage's weights input (activities put each under its input name). */
export function weightsFileIn(dir: string): string {
  return join(dir, WEIGHTS_FILE);
}
