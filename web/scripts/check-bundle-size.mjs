// Fails the build when the gzipped JavaScript that the page loads exceeds the budget.
// The sum covers every .js file the build wrote, since the page may load all of them.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET_BYTES = 100 * 1024;
const outDir = new URL("../../server/viralsplit/static/", import.meta.url).pathname;

function listFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path) : [path];
  });
}

const scripts = listFiles(outDir).filter((path) => path.endsWith(".js"));
if (scripts.length === 0) {
  console.error(`check-bundle-size: no .js files in ${outDir}; run vite build first`);
  process.exit(1);
}

let total = 0;
for (const path of scripts) {
  const gzipped = gzipSync(readFileSync(path), { level: 9 }).length;
  total += gzipped;
  console.log(`${relative(outDir, path)}: ${(gzipped / 1024).toFixed(1)} KiB gzipped`);
}

const summary = `${(total / 1024).toFixed(1)} KiB of ${BUDGET_BYTES / 1024} KiB`;
if (total > BUDGET_BYTES) {
  console.error(`check-bundle-size: JavaScript over budget: ${summary} gzipped`);
  process.exit(1);
}
console.log(`check-bundle-size: JavaScript within budget: ${summary} gzipped`);
