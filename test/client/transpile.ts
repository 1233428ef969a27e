/**
 * Child-process tests need the client as plain JavaScript without depending on a fresh dist/:
 * this transpiles the given src/ files (type-only imports vanish) into `dir`, keeping their
 * relative layout so their own relative imports resolve.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Writes `dir/<file>.js` for each `file` (relative to src/, e.g. 'client/ProxyClient.ts'). */
export function transpileSources(dir: string, files: string[]): void {
  fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  for (const file of files) {
    const source = fs.readFileSync(path.join(SRC, file), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false },
      fileName: file,
    });
    const out = path.join(dir, file.replace(/\.ts$/, '.js'));
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, outputText);
  }
}
