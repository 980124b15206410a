/**
 * No import circle in lib/, activities/ or workflows/ (issue 19): a circle makes module evaluation order
 * decide which binding is still undefined, and ties layers together that should stack (models below weights,
 * the training engine below the stage definitions). The graph is every relative module specifier of an
 * `import ... from`, `export ... from` or side-effect `import '...'`, `import type` and `export type` included:
 * a type-only edge costs nothing at run time, but it still ties the two modules' designs together, so it counts.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from './helpers/lea.js';

const ROOTS = ['lib', 'activities', 'workflows'];

function tsFilesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFilesUnder(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** The relative module specifiers of a file's import and export declarations, type-only ones included. */
function relativeSpecifiers(source: string, fileName: string): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const specifiers: string[] = [];
  for (const statement of file.statements) {
    if (!ts.isImportDeclaration(statement) && !ts.isExportDeclaration(statement)) continue;
    const spec = statement.moduleSpecifier;
    if (spec && ts.isStringLiteral(spec) && spec.text.startsWith('.')) specifiers.push(spec.text);
  }
  return specifiers;
}

/** './x.js' from a file → the .ts file it names (NodeNext: the specifier carries the emitted .js name). */
function resolveSpecifier(from: string, specifier: string): string {
  return resolve(dirname(from), specifier).replace(/\.js$/, '.ts');
}

/** Module → the modules it imports, as paths relative to the repository root. */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const path of ROOTS.flatMap((r) => tsFilesUnder(join(root, r)))) {
    const targets = relativeSpecifiers(readFileSync(path, 'utf8'), path).map((s) =>
      relative(root, resolveSpecifier(path, s)),
    );
    graph.set(relative(root, path), targets);
  }
  return graph;
}

/** One import circle as the path a → b → … → a, or undefined when the graph has none (depth-first search). */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (node: string): string[] | undefined => {
    if (onPath.has(node)) return [...path.slice(path.indexOf(node)), node];
    if (done.has(node)) return undefined;
    path.push(node);
    onPath.add(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

test('the detector finds a circle, and only a circle', () => {
  const specifiers = relativeSpecifiers(
    [
      "import type { A } from './a.js';",
      "import { b } from '../b.js';",
      "export { c } from './c.js';",
      "export type { D } from './d.js';",
      "import './e.js';",
      "import { z } from 'zod';",
    ].join('\n'),
    'x.ts',
  );
  assert.deepEqual(specifiers, ['./a.js', '../b.js', './c.js', './d.js', './e.js']);
  const chain = new Map([
    ['a', ['b', 'd']],
    ['b', ['c']],
    ['c', []],
    ['d', ['c']],
  ]);
  assert.equal(findCycle(chain), undefined);
  chain.set('c', ['e']);
  chain.set('e', ['b']);
  assert.deepEqual(findCycle(chain), ['b', 'c', 'e', 'b']);
  assert.deepEqual(findCycle(new Map([['self', ['self']]])), ['self', 'self']);
});

test('lib, activities and workflows import no circle', () => {
  const graph = importGraph(repoRoot);
  assert.ok(graph.size > 50, `only ${graph.size} modules found under ${ROOTS.join(', ')}`);
  for (const [from, targets] of graph)
    for (const to of targets) assert.ok(graph.has(to), `${from} imports ${to}, which is not a module here`);
  const cycle = findCycle(graph);
  assert.equal(cycle, undefined, `import circle: ${cycle?.join(' → ')}`);
});
