/** Value parsers for command-line flags: a bad value makes commander name the flag and exit 2. */
import { InvalidArgumentError } from 'commander';
import { statSync } from 'node:fs';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('expected a positive integer');
  }
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError('expected an integer >= 0');
  return n;
}

/** An output folder: absent (it is created) or a folder; an existing file is refused before any work. */
export function outputFolder(value: string): string {
  const s = statSync(value, { throwIfNoEntry: false });
  if (s && !s.isDirectory()) throw new InvalidArgumentError(`${value} exists and is not a folder`);
  return value;
}
