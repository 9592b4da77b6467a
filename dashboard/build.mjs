// Builds the counts page into query-service/assets/dashboard/, where the query
// service embeds it (include_bytes!). The built files are committed, so
// `scripts/dev up` needs no Node; `node build.mjs --check` (run by
// e2e/tests/dashboard.rs) fails when they are stale relative to these sources.
//
//   node build.mjs          write the bundle
//   node build.mjs --check  build in memory and compare with what is committed
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'query-service', 'assets', 'dashboard');

async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [join(here, 'src', entry)],
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    write: false,
    outdir: 'out',
    legalComments: 'eof',
    logLevel: 'warning',
  });
  return result.outputFiles[0].text;
}

const hash = (text) => createHash('sha256').update(text).digest('hex').slice(0, 12);

const files = {};
files['app.js'] = await bundle('main.js');
files['app.css'] = await bundle('app.css');
// The page names its assets with a content hash, so they can be cached for good
// while the page itself is revalidated (see query-service/src/dashboard.rs).
let html = readFileSync(join(here, 'src', 'index.html'), 'utf8');
for (const name of ['app.js', 'app.css']) {
  const marker = `{{${name}}}`;
  if (!html.includes(marker)) throw new Error(`index.html lacks ${marker}`);
  html = html.replaceAll(marker, hash(files[name]));
}
files['index.html'] = html;

if (process.argv.includes('--check')) {
  const stale = [];
  const present = new Set(readdirSync(out, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name));
  for (const [name, text] of Object.entries(files)) {
    let committed = null;
    try {
      committed = readFileSync(join(out, name), 'utf8');
    } catch {}
    if (committed !== text) stale.push(committed === null ? `${name} (missing)` : name);
    present.delete(name);
  }
  for (const extra of present) stale.push(`${extra} (not built from the sources)`);
  if (stale.length > 0) {
    console.error(`query-service/assets/dashboard is stale: ${stale.join(', ')}`);
    console.error('rebuild it with `npm run build` in dashboard/ and commit the result');
    process.exit(1);
  }
  console.log(`query-service/assets/dashboard matches the sources (${Object.keys(files).length} files)`);
} else {
  mkdirSync(out, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(out, name), text);
  for (const [name, text] of Object.entries(files)) {
    console.log(`${name.padEnd(10)} ${String(Buffer.byteLength(text)).padStart(7)} bytes`);
  }
}
