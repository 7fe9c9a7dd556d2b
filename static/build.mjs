// Builds the browser bundle into cobrowse/static_dist/ (gitignored; the Python app
// serves loader.js at <prefix>loader.js and the rest at <prefix>static/<file>).
//
//   node static/build.mjs            production build (minified), writes manifest.json
//   node static/build.mjs --dev      unminified, with inline source maps
//   node static/build.mjs --watch    rebuild whenever static/src changes
//
// Bundles are built in the order of BUNDLES. Each one's content hash is handed to
// the bundles after it as the constant __COBROWSE_HASH_<NAME>__, so a bundle that
// loads another one asks for "<name>.js?v=<hash>": the static files can be cached
// for good while only loader.js (a stable URL) needs revalidating. A bundle with a
// budget fails the build when its gzip size is over it.

import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, 'src');
const OUT = join(HERE, '..', 'cobrowse', 'static_dist');
const MANIFEST = join(OUT, 'manifest.json');

const BUNDLES = [
  // Lazily loaded on the first click of "Get help".
  { name: 'widget', entry: 'widget/index.js' },
  // Injected into every page: must stay tiny.
  { name: 'loader', entry: 'loader.js', budget: 6 * 1024 },
];

const args = new Set(process.argv.slice(2));
const dev = args.has('--dev');

function hashOf(buf) {
  return createHash('sha256').update(buf).digest('hex').slice(0, 12);
}

// Write through a temporary file so the server never sees half a file.
function writeAtomic(path, data) {
  const tmp = path + '.tmp';
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function buildOnce() {
  const started = performance.now();
  const defines = {};
  const outputs = [];
  for (const b of BUNDLES) {
    const result = await esbuild.build({
      entryPoints: [join(SRC, b.entry)],
      bundle: true,
      format: 'iife',
      target: 'es2019',
      platform: 'browser',
      minify: !dev,
      sourcemap: dev ? 'inline' : false,
      legalComments: dev ? 'inline' : 'eof',
      define: { ...defines },
      write: false,
      logLevel: 'silent',
    });
    const code = Buffer.from(result.outputFiles[0].contents);
    const hash = hashOf(code);
    defines[`__COBROWSE_HASH_${b.name.toUpperCase()}__`] = JSON.stringify(hash);
    outputs.push({ ...b, file: `${b.name}.js`, code, hash, gzip: gzipSync(code, { level: 9 }).length });
  }

  const over = outputs.filter((o) => o.budget && o.gzip > o.budget && !dev);
  if (over.length) {
    throw new Error(over.map((o) => `${o.file} is ${o.gzip} B gzip, over its budget of ${o.budget} B`).join('\n'));
  }

  mkdirSync(OUT, { recursive: true });
  // Remove files a previous build made that this one no longer makes.
  const made = new Set(outputs.map((o) => o.file));
  if (existsSync(MANIFEST)) {
    try {
      for (const f of Object.keys(JSON.parse(readFileSync(MANIFEST, 'utf8')).files || {})) {
        if (!made.has(f) && !f.includes('/')) rmSync(join(OUT, f), { force: true });
      }
    } catch {
      // unreadable manifest: nothing to clean
    }
  }
  for (const o of outputs) writeAtomic(join(OUT, o.file), o.code);

  const manifest = {
    mode: dev ? 'dev' : 'production',
    files: Object.fromEntries(
      outputs.map((o) => [
        o.file,
        { size: o.code.length, gzip: o.gzip, hash: o.hash, ...(o.budget ? { budget_gzip: o.budget } : {}) },
      ]),
    ),
  };
  // Written last: its presence means the files it lists are complete.
  writeAtomic(MANIFEST, JSON.stringify(manifest, null, 2) + '\n');

  const kb = (n) => (n / 1024).toFixed(2).padStart(7) + ' KB';
  console.log(`cobrowse bundle -> ${OUT}${dev ? ' (dev)' : ''}`);
  console.log('  file          size       gzip  budget');
  for (const o of outputs) {
    console.log(`  ${o.file.padEnd(10)}${kb(o.code.length)}${kb(o.gzip)}  ${o.budget ? kb(o.budget).trim() : '-'}`);
  }
  console.log(`  built in ${Math.round(performance.now() - started)} ms`);
}

async function main() {
  if (!args.has('--watch')) return buildOnce();
  const rebuild = () =>
    buildOnce().catch((e) => console.error(`build failed: ${e.message}`));
  await rebuild();
  let timer = null;
  watch(SRC, { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(rebuild, 50);
  });
  console.log(`watching ${SRC}`);
}

main().catch((e) => {
  console.error(`build failed: ${e.message}`);
  process.exit(1);
});
