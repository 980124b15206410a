/**
 * lib/models reads like the papers' modules (issue 29): no function outside fused/ is over 60 lines, a
 * hand-written gradient (tf.customGrad) appears only in fused/op.ts, and the fused ops take their parameters as
 * named records, never as positional lists: at most three parameters (input, record, shape), no rest parameter.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from './helpers/lea.js';

const MODELS = join(repoRoot, 'lib/models');
const MAX_LINES = 60;

function sources(dir: string): ts.SourceFile[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) =>
      ts.createSourceFile(join(dir, f), readFileSync(join(dir, f), 'utf8'), ts.ScriptTarget.Latest, true),
    );
}

function visit(node: ts.Node, each: (n: ts.Node) => void): void {
  each(node);
  ts.forEachChild(node, (child) => visit(child, each));
}

const where = (file: ts.SourceFile, n: ts.Node) =>
  `${relative(repoRoot, file.fileName)}:${file.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;

test(`no function in lib/models outside fused/ is over ${MAX_LINES} lines, and tf.customGrad is only in fused/op.ts`, () => {
  const long: string[] = [];
  const customGrads: string[] = [];
  for (const file of sources(MODELS)) {
    const fused = relative(MODELS, file.fileName).startsWith('fused/');
    visit(file, (n) => {
      if (!fused && ts.isFunctionLike(n) && 'body' in n && n.body) {
        const [a, b] = [n.getStart(), n.end].map((p) => file.getLineAndCharacterOfPosition(p).line);
        if ((b as number) - (a as number) + 1 > MAX_LINES)
          long.push(`${where(file, n)} (${(b as number) - (a as number) + 1} lines)`);
      }
      if (
        ts.isPropertyAccessExpression(n) &&
        n.name.text === 'customGrad' &&
        !file.fileName.endsWith('fused/op.ts')
      )
        customGrads.push(where(file, n));
    });
  }
  assert.deepEqual(long, [], 'functions over the limit');
  assert.deepEqual(customGrads, [], 'hand-written gradients outside fused/op.ts');
});

test('the fused ops take named records: at most three parameters, no rest parameter', () => {
  const positional: string[] = [];
  let exported = 0;
  for (const file of sources(join(MODELS, 'fused'))) {
    for (const s of file.statements) {
      if (!ts.isFunctionDeclaration(s) || !s.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword))
        continue;
      exported++;
      if (s.parameters.length > 3 || s.parameters.some((p) => p.dotDotDotToken))
        positional.push(
          `${where(file, s)} ${s.name?.text}(${s.parameters.map((p) => p.name.getText()).join(', ')})`,
        );
    }
  }
  assert.ok(exported >= 8, `found only ${exported} exported functions in lib/models/fused`);
  assert.deepEqual(positional, []);
});
