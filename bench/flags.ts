/** The `--flag value` arguments of the bench scripts that run on their own (compiled-steps, fused-ops, step-fingerprint). */
import { COMPILE_MODES, type CompileMode } from '../lib/compute/compile-modes.js';

/** The `--flag value` pairs of `argv`; a flag not in `known`, or one without a value, is refused with `usage`. */
export function readFlags(argv: string[], known: string[], usage: string): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const [flag = '', value] = [argv[i], argv[i + 1]];
    if (!known.includes(flag) || value === undefined) throw new Error(`bad argument ${flag} (${usage})`);
    flags.set(flag, value);
  }
  return flags;
}

/** A whole number of at least 1 under `name`, else `fallback` when the flag is absent. */
export function countFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const value = flags.get(name);
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a whole number >= 1, got ${value}`);
  return n;
}

/** `--modes`: a comma-separated list of compile modes, every mode when absent. */
export function modesFlag(flags: Map<string, string>): CompileMode[] {
  const value = flags.get('--modes');
  if (value === undefined) return [...COMPILE_MODES];
  const modes = value.split(',');
  const bad = modes.find((m) => !(COMPILE_MODES as readonly string[]).includes(m));
  if (bad !== undefined) throw new Error(`--modes: '${bad}' is not one of ${COMPILE_MODES.join(', ')}`);
  return modes as CompileMode[];
}
