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
//
// The agent console (served by the console's own listener, not the sites) is
// built after them: console.js (with @rrweb/replay) and console.css (with the
// replayer's stylesheet) from static/src/console/, and console.html copied from
// its template with their content hashes filled in.

import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, watch, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlibConstants, gzipSync } from 'node:zlib';
import { gzipAsync } from '@gfx/zopfli';

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC = join(HERE, 'src');
const OUT = join(HERE, '..', 'cobrowse', 'static_dist');
const MANIFEST = join(OUT, 'manifest.json');

// Changes to rrweb's recorder source, each made exactly once or the build fails
// (an rrweb upgrade moved the code: look again, never lose one silently).
const RRWEB_PATCHES = [
  // rrweb 2.1.6 works out a style attribute's old value by setting it on a
  // detached <span> with setAttribute('style'), which a strict CSP (style-src
  // without 'unsafe-inline') reports as a violation whenever the page changes an
  // inline style, even through CSSOM. Setting it through CSSOM (style.cssText)
  // parses the same declarations and is allowed.
  ['old.setAttribute("style", m.oldValue);', 'old.style.cssText = m.oldValue;'],
  // We never record canvas contents (recordCanvas: false, widget/recorder.js:
  // pixels can carry what masking cannot see). rrweb builds its CanvasManager
  // anyway, which keeps the canvas and WebGL observers and an inlined worker
  // script in the bundle: 3 KB of the recorder's gzip size. A stand-in with the
  // methods the recorder calls takes its place, and the rest is tree-shaken.
  ['canvasManager = new CanvasManager({', 'canvasManager = new CobrowseNoCanvasManager({'],
  [
    'const blob = typeof self !== "undefined" && self.Blob && new Blob([jsContent], { type: "text/javascript;charset=utf-8" });',
    'const blob = null;',
  ],
  // Nor fonts (collectFonts: false): the font observer goes too.
  ['fontObserver = initFontObserver(o);', ''],
  // Nor hooks (record() gets no `hooks`): without any, rrweb's mergeHooks only
  // wraps every observer callback in a function that calls it.
  ['  mergeHooks(o, hooks);\n', ''],
];
const RRWEB_ADDED = '\nclass CobrowseNoCanvasManager { reset() {} freeze() {} unfreeze() {} lock() {} unlock() {} }\n';

const RRWEB_PATCH = {
  name: 'rrweb-patch',
  setup(build) {
    build.onLoad({ filter: /[\\/]@rrweb[\\/]record[\\/]dist[\\/]record\.js$/ }, (args) => {
      let source = readFileSync(args.path, 'utf8');
      for (const [from, to] of RRWEB_PATCHES) {
        if (source.split(from).length != 2) throw new Error(`rrweb-patch: "${from}" not found once in ${args.path}`);
        source = source.replace(from, () => to);
      }
      return { contents: source + RRWEB_ADDED, loader: 'js' };
    });
  },
};

const BUNDLES = [
  // The rrweb recorder: loaded by the widget only after the visitor agrees to
  // share (and by the loader on page loads during a sharing session).
  { name: 'recorder', entry: 'recorder-entry.js', plugins: [RRWEB_PATCH] },
  // Screen sharing and calls: loaded by the widget only when an agent asks.
  { name: 'screenshare', entry: 'screenshare-entry.js' },
  // Lazily loaded on the first click of "Get help": the panel, the chat, markers,
  // shared control.
  { name: 'widget', entry: 'widget/index.js' },
  // Injected into every page: must stay tiny.
  { name: 'loader', entry: 'loader.js', budget: 6 * 1024 },
];

// The agent console: its own page on its own origin (see cobrowse/console/app.py).
const CONSOLE = {
  js: { name: 'console.js', entry: 'console/main.js' },
  css: { name: 'console.css', entry: 'console/styles.css' },
  html: { name: 'console.html', template: 'console/console.html' },
};

// Bundles that load when the visitor asks for help, with a budget for their gzip
// sizes summed: the widget (the panel, the chat, markers, shared control) and
// the recorder once they agree to share (rrweb's recorder is 18 KB of it).
// Screen sharing is an escalation an agent asks for, outside this budget.
const GROUPS = [{ name: 'on-demand', files: ['widget.js', 'recorder.js'], budget: 50 * 1024 }];

const args = new Set(process.argv.slice(2));
const dev = args.has('--dev');

function hashOf(buf) {
  return createHash('sha256').update(buf).digest('hex').slice(0, 12);
}

// gzip as served: zopfli finds a smaller deflate stream than zlib's level 9
// (3% here), in a format every gzip reader reads. The budgets are about these
// bytes, the ones a browser that accepts gzip downloads.
// (A dev build writes no compressed files; its sizes come from zlib, faster.)
async function gzipped(code) {
  if (dev) return gzipSync(code, { level: 9 });
  return Buffer.from(await gzipAsync(code, { numiterations: 15 }));
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
      plugins: b.plugins || [],
      write: false,
      logLevel: 'silent',
    });
    const code = Buffer.from(result.outputFiles[0].contents);
    const hash = hashOf(code);
    defines[`__COBROWSE_HASH_${b.name.toUpperCase()}__`] = JSON.stringify(hash);
    const gz = await gzipped(code);
    outputs.push({ ...b, file: `${b.name}.js`, code, hash, gz, gzip: gz.length });
  }

  outputs.push(await buildStub());
  outputs.push(...(await buildConsole()));

  const groups = GROUPS.map((g) => ({
    ...g,
    gzip: g.files.reduce((sum, f) => sum + outputs.find((o) => o.file == f).gzip, 0),
  }));
  const over = [...outputs, ...groups.map((g) => ({ ...g, file: `${g.name} (${g.files.join(' + ')})` }))].filter(
    (o) => o.budget && o.gzip > o.budget && !dev,
  );
  if (over.length) {
    throw new Error(over.map((o) => `${o.file} is ${o.gzip} B gzip, over its budget of ${o.budget} B`).join('\n'));
  }

  mkdirSync(OUT, { recursive: true });
  // Remove files a previous build made that this one no longer makes.
  const made = new Set(outputs.map((o) => o.file));
  if (existsSync(MANIFEST)) {
    try {
      for (const f of Object.keys(JSON.parse(readFileSync(MANIFEST, 'utf8')).files || {})) {
        if (!made.has(f) && !f.includes('/')) {
          for (const ext of ['', '.gz', '.br']) rmSync(join(OUT, f + ext), { force: true });
        }
      }
    } catch {
      // unreadable manifest: nothing to clean
    }
  }
  for (const o of outputs) {
    writeAtomic(join(OUT, o.file), o.code);
    // Pre-compressed siblings: the server (aiohttp's FileResponse) sends the
    // .br or .gz one to browsers that accept it, so visitors download the
    // compressed sizes the budgets are about.
    const compressed = [
      ['.gz', o.gz],
      ['.br', brotliCompressSync(o.code, { params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 11 } })],
    ];
    for (const [ext, data] of compressed) {
      if (dev) rmSync(join(OUT, o.file + ext), { force: true });
      else writeAtomic(join(OUT, o.file + ext), data);
    }
  }

  const manifest = {
    mode: dev ? 'dev' : 'production',
    files: Object.fromEntries(
      outputs.map((o) => [
        o.file,
        { size: o.code.length, gzip: o.gzip, hash: o.hash, ...(o.budget ? { budget_gzip: o.budget } : {}) },
      ]),
    ),
    groups: Object.fromEntries(groups.map((g) => [g.name, { files: g.files, gzip: g.gzip, budget_gzip: g.budget }])),
  };
  // Written last: its presence means the files it lists are complete.
  writeAtomic(MANIFEST, JSON.stringify(manifest, null, 2) + '\n');

  const kb = (n) => (n / 1024).toFixed(2).padStart(7) + ' KB';
  console.log(`cobrowse bundle -> ${OUT}${dev ? ' (dev)' : ''}`);
  console.log('  file              size       gzip  budget');
  for (const o of outputs) {
    console.log(`  ${o.file.padEnd(14)}${kb(o.code.length)}${kb(o.gzip)}  ${o.budget ? kb(o.budget).trim() : '-'}`);
  }
  for (const g of groups) {
    console.log(`  ${g.name.padEnd(10)}${' '.repeat(10)}${kb(g.gzip)}  ${kb(g.budget).trim()}  (${g.files.join(' + ')})`);
  }
  console.log(`  built in ${Math.round(performance.now() - started)} ms`);
}

// stub.js: the inline tag's script (see its header). The proxy reads it from
// static_dist and puts it in pages as it is, so it must stay small and hold
// nothing an HTML (or XHTML) parser would take for markup.
const STUB_BUDGET = 1536; // bytes, as inlined into every page
async function buildStub() {
  const result = await esbuild.build({
    entryPoints: [join(SRC, 'stub.js')],
    bundle: false,
    target: 'es2019',
    minifyWhitespace: !dev,
    minifyIdentifiers: !dev,
    minifySyntax: false, // it would turn ifs into && chains
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  });
  const code = Buffer.from(result.outputFiles[0].contents);
  const text = code.toString();
  const bad = ['<', '&', ']]>'].filter((c) => text.includes(c));
  if (bad.length) throw new Error(`stub.js must not contain ${bad.join(' ')} (it is inlined into pages)`);
  if (code.length > STUB_BUDGET && !dev) throw new Error(`stub.js is ${code.length} B, over its budget of ${STUB_BUDGET} B`);
  const gz = await gzipped(code);
  return { name: 'stub', file: 'stub.js', code, hash: hashOf(code), gz, gzip: gz.length };
}

async function buildConsole() {
  const common = {
    bundle: true,
    minify: !dev,
    sourcemap: dev ? 'inline' : false,
    legalComments: dev ? 'inline' : 'eof',
    write: false,
    logLevel: 'silent',
  };
  const built = [];
  const js = await esbuild.build({
    ...common,
    entryPoints: [join(SRC, CONSOLE.js.entry)],
    format: 'iife',
    target: 'es2020',
    platform: 'browser',
  });
  const css = await esbuild.build({
    ...common,
    entryPoints: [join(SRC, CONSOLE.css.entry)],
    target: 'chrome100',
    loader: { '.css': 'css' },
  });
  for (const [spec, result] of [[CONSOLE.js, js], [CONSOLE.css, css]]) {
    const code = Buffer.from(result.outputFiles[0].contents);
    const gz = await gzipped(code);
    built.push({ name: spec.name, file: spec.name, code, hash: hashOf(code), gz, gzip: gz.length });
  }
  // The page is no-store; the files it names carry their hash, so they can be cached.
  const [jsOut, cssOut] = built;
  const html = readFileSync(join(SRC, CONSOLE.html.template), 'utf8')
    .replaceAll('{{CONSOLE_JS}}', `static/${jsOut.file}?v=${jsOut.hash}`)
    .replaceAll('{{CONSOLE_CSS}}', `static/${cssOut.file}?v=${cssOut.hash}`);
  const code = Buffer.from(html);
  const gz = await gzipped(code);
  built.push({ name: CONSOLE.html.name, file: CONSOLE.html.name, code, hash: hashOf(code), gz, gzip: gz.length });
  return built;
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
