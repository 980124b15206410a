/**
 * Checksum lock files: where a publisher gives no sha256 (or only a prefix), the first verified download records
 * the full sha256 and size here (`lea data fetch --record-checksums`, `lea weights fetch --record-checksums`),
 * the user commits the file, and every later fetch is verified against it, so a changed upstream file is refused.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { BadInputError, errorMessage } from '../errors.js';

const lockSchema = z.strictObject({
  files: z.record(
    z.string().min(1),
    z.strictObject({
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits'),
      size: z.number().int().nonnegative(),
    }),
  ),
});

export type ChecksumLock = z.infer<typeof lockSchema>['files'];

/** `configs/datasets/god.yaml` → `configs/datasets/god.lock.yaml`. */
export function lockFileOf(file: string): string {
  return file.replace(/(\.ya?ml)?$/, '.lock.yaml');
}

/** The recorded checksums ({} when the lock file does not exist yet). */
export function readLock(path: string): ChecksumLock {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new BadInputError(`${path}: cannot read lock file (${(err as NodeJS.ErrnoException).code})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new BadInputError(`${path}: not valid YAML: ${errorMessage(err).split('\n')[0]}`);
  }
  const parsed = lockSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`);
    throw new BadInputError(`${path}: invalid lock file: ${issues.join('; ')}`);
  }
  return parsed.data.files;
}

export function writeLock(path: string, files: ChecksumLock, what: string): void {
  const sorted = Object.fromEntries(Object.entries(files).sort(([a], [b]) => a.localeCompare(b)));
  const header =
    `# sha256 and size of ${what}, recorded by a first verified download (--record-checksums).\n` +
    `# Commit this file: every later fetch is verified against it. Delete an entry to record it again.\n`;
  writeFileSync(path, header + stringifyYaml({ files: sorted }));
}
