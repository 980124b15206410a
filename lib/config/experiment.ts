/**
 * The one loader for experiment configs (YAML or JSON). Every error names the file and the field path.
 * `pipeline` selects the workflow; each pipeline has a strict section (unknown keys are errors).
 * `extends: other.yaml` (relative to the file) starts from another config: sections merge key by key, and
 * a value given here (a scalar or a list) replaces the other's. The paper's subjects differ in a few fields.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseDocument, parse as parseYamlValue } from 'yaml';
import { z } from 'zod';
import { BadInputError } from '../errors.js';
import { reproductionConfig } from './reproduction.js';

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'must be 1-64 lower-case letters, digits, ".", "_" or "-"');

const helloConfig = z.strictObject({
  name,
  description: z.string().optional(),
  pipeline: z.literal('hello'),
  seed: z.number().int().min(0).default(0),
  hello: z.strictObject({
    message: z.string().min(1),
    repeat: z.number().int().min(1).max(10_000).default(3),
  }),
});

export const experimentSchema = z.discriminatedUnion('pipeline', [helloConfig, reproductionConfig]);
export type ExperimentConfig = z.output<typeof experimentSchema>;
export type HelloConfig = z.output<typeof helloConfig>;

/** JSON Schema of the experiment config, for editors (`lea config schema`). */
export function experimentJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(experimentSchema, { io: 'input' }) as Record<string, unknown>;
}

function formatIssues(source: string, error: z.ZodError): string {
  const lines = error.issues.map(
    (i) => `  ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`,
  );
  return `${source}: invalid config:\n${lines.join('\n')}`;
}

/** Applies `key.path=value` overrides (values parsed as YAML scalars) to a parsed config object. */
export function applyOverrides(raw: unknown, overrides: string[], source: string): unknown {
  const root = (raw ?? {}) as Record<string, unknown>;
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new BadInputError(`--set ${JSON.stringify(o)}: expected key.path=value`);
    const path = o.slice(0, eq).split('.');
    if (path.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype')) {
      throw new BadInputError(`--set ${JSON.stringify(o)}: invalid key path`);
    }
    let node = root;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined) node[key] = {};
      else if (typeof next !== 'object' || next === null || Array.isArray(next)) {
        throw new BadInputError(`--set ${o}: '${key}' in ${source} is not a section`);
      }
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = parseYamlValue(o.slice(eq + 1));
  }
  return root;
}

function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
    throw new BadInputError(`${source}: not valid YAML/JSON${where}: ${e.message.split('\n')[0]}`);
  }
  return doc.toJS();
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BadInputError(
      `${file}: cannot read config (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
}

const isSection = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function merged(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isSection(b) && isSection(v) ? merged(b, v) : v;
  }
  return out;
}

/** The config object with its `extends` chain merged in (each path relative to the file naming it). */
function withBase(raw: unknown, source: string, chain: string[]): unknown {
  if (!isSection(raw) || raw.extends === undefined) return raw;
  const { extends: base, ...own } = raw;
  if (typeof base !== 'string' || base === '')
    throw new BadInputError(`${source}: extends must be the path of another config file`);
  const file = resolve(dirname(source), base);
  if (chain.includes(file))
    throw new BadInputError(`${source}: extends ${base} goes round in a circle (${chain.join(' -> ')})`);
  const parent = withBase(parseYaml(readText(file), file), file, [...chain, file]);
  if (!isSection(parent))
    throw new BadInputError(`${file}: a config must be a mapping (extended by ${source})`);
  return merged(parent, own);
}

export function parseExperimentConfig(
  text: string,
  source: string,
  overrides: string[] = [],
): ExperimentConfig {
  const raw = applyOverrides(withBase(parseYaml(text, source), source, [resolve(source)]), overrides, source);
  const result = experimentSchema.safeParse(raw);
  if (!result.success) throw new BadInputError(formatIssues(source, result.error));
  return result.data;
}

export function loadExperimentConfig(file: string, overrides: string[] = []): ExperimentConfig {
  return parseExperimentConfig(readText(file), file, overrides);
}
