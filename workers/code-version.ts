/** The code version recorded with every run: the git commit (plus "-dirty" for local changes), or the
 * package version outside a git checkout. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { projectRoot } from '../lib/config/infra.js';

let cached: string | undefined;

export function codeVersion(): string {
  if (cached) return cached;
  try {
    const git = (args: string[]) =>
      execFileSync('git', args, {
        cwd: projectRoot,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    cached =
      git(['rev-parse', '--short=12', 'HEAD']) +
      (git(['status', '--porcelain', '--untracked-files=no']) ? '-dirty' : '');
  } catch {
    cached = `v${(JSON.parse(readFileSync(`${projectRoot}/package.json`, 'utf8')) as { version: string }).version}`;
  }
  return cached;
}
