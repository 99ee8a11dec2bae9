#!/usr/bin/env node
'use strict';
// Runs an ONNX model with ONNX Runtime (onnxruntime-node, CPU execution
// provider, all graph optimizations) as sarai-rt's comparison peer.
//
//   node tools/scripts/ort/run_ort.js MODEL.onnx --input NAME=FILE.npy ... --output-dir DIR
//        [--runs N] [--threads N] [--quiet] [--feed OUT=IN ...]
//
// --feed OUT=IN: after every run, input IN takes output OUT's value (a
// streaming model's state, as `sarai-rt bench --feed` does), so each run is
// one step of the stream.
//
// Writes every model output as DIR/<name>.npy (bytes outside [A-Za-z0-9_+-.]
// and a leading '.' as %XX, as sarai-rt run does) and prints one line per run with its
// wall time, then one line per output with its shape and dtype.
//
// onnxruntime-node is looked up in $SARAI_ORT_DIR/node_modules (default
// $HOME/.cache/sarai-rt/ort, filled by tools/scripts/ort/setup.sh), then through
// node's usual module resolution. Exit codes: 0 ok, 1 error, 2 usage,
// 77 onnxruntime-node not installed.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { readNpy, writeNpy } = require('./npy');

function usage(msg) {
  if (msg) process.stderr.write(`run_ort.js: ${msg}\n`);
  process.stderr.write(
    'usage: node tools/scripts/ort/run_ort.js MODEL.onnx --input NAME=FILE.npy ... --output-dir DIR\n' +
    '                                 [--runs N] [--threads N] [--quiet] [--feed OUT=IN ...]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const a = { model: null, inputs: [], outputDir: null, runs: 1, threads: 0, quiet: false, feeds: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--input' || arg === '-i') {
      const v = next();
      const eq = v.indexOf('=');
      if (eq <= 0) usage(`--input expects NAME=FILE.npy, got '${v}'`);
      a.inputs.push([v.slice(0, eq), v.slice(eq + 1)]);
    } else if (arg.startsWith('--input=')) {
      argv.splice(i + 1, 0, arg.slice('--input='.length));
      argv[i] = '--input';
      i--;
    } else if (arg === '--output-dir' || arg === '-o') {
      a.outputDir = next();
    } else if (arg.startsWith('--output-dir=')) {
      a.outputDir = arg.slice('--output-dir='.length);
    } else if (arg === '--runs') {
      a.runs = Number(next());
      if (!Number.isInteger(a.runs) || a.runs < 1) usage('--runs must be a positive integer');
    } else if (arg === '--threads') {
      a.threads = Number(next());
      if (!Number.isInteger(a.threads) || a.threads < 0) usage('--threads must be a non-negative integer');
    } else if (arg === '--feed') {
      const v = next();
      const eq = v.indexOf('=');
      if (eq <= 0) usage(`--feed expects OUT=IN, got '${v}'`);
      a.feeds.push([v.slice(0, eq), v.slice(eq + 1)]);
    } else if (arg === '--quiet' || arg === '-q') {
      a.quiet = true;
    } else if (arg === '--help' || arg === '-h') {
      usage();
    } else if (arg.startsWith('-')) {
      usage(`unknown option ${arg}`);
    } else if (a.model === null) {
      a.model = arg;
    } else {
      usage(`unexpected argument ${arg}`);
    }
  }
  if (!a.model) usage('no model given');
  if (!a.outputDir) usage('--output-dir is required');
  return a;
}

function loadOrt() {
  const dir = process.env.SARAI_ORT_DIR || path.join(os.homedir(), '.cache', 'sarai-rt', 'ort');
  const candidates = [path.join(dir, 'node_modules', 'onnxruntime-node'), 'onnxruntime-node'];
  for (const c of candidates) {
    try {
      return require(c);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  process.stderr.write(`run_ort.js: onnxruntime-node is not installed in ${dir}; run tools/scripts/ort/setup.sh\n`);
  process.exit(77);
}

// File name for a tensor name: the rule of sarai-rt (loader/tensor_file_name.h).
// Bytes of the UTF-8 name in [A-Za-z0-9_+-.] stay (a leading '.' does not),
// every other byte becomes %XX; past 200 bytes the escaped stem keeps its
// first whole escapes up to 183 bytes and ends in '~' + 16 hex digits of
// the name's 64-bit FNV-1a hash.
function tensorFileName(name) {
  const bytes = Buffer.from(name, 'utf8');
  let s = '';
  const cuts = [];
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    cuts.push(s.length);
    const plain = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 43 ||
                  c === 45 || (c === 46 && i > 0);
    s += plain ? String.fromCharCode(c) : '%' + c.toString(16).toUpperCase().padStart(2, '0');
  }
  if (s === '') return '%.npy';
  if (s.length > 200) {
    let keep = 0;
    for (const c of cuts) if (c <= 200 - 17) keep = c;
    let h = 1469598103934665603n;
    for (const b of bytes) h = ((h ^ BigInt(b)) * 1099511628211n) & 0xffffffffffffffffn;
    s = s.slice(0, keep) + '~' + h.toString(16).padStart(16, '0');
  }
  return s + '.npy';
}

function fmtShape(dims) {
  return `[${dims.join(', ')}]`;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const ort = loadOrt();

  const options = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
  };
  if (args.threads > 0) {
    options.intraOpNumThreads = args.threads;
    options.interOpNumThreads = 1;
  }
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(args.model, options);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;

  const feeds = {};
  for (const [name, file] of args.inputs) {
    if (!session.inputNames.includes(name)) {
      throw new Error(`model has no input '${name}' (inputs: ${session.inputNames.join(', ')})`);
    }
    const arr = readNpy(file);
    feeds[name] = new ort.Tensor(arr.dtype, arr.data, arr.shape);
  }
  for (const [out, inp] of args.feeds) {
    if (!session.outputNames.includes(out)) throw new Error(`--feed: model has no output '${out}'`);
    if (!session.inputNames.includes(inp)) throw new Error(`--feed: model has no input '${inp}'`);
  }
  const missing = session.inputNames.filter((n) => !(n in feeds));
  if (missing.length) throw new Error(`missing --input for: ${missing.join(', ')}`);

  console.log(`ort ${ort.env.versions ? ort.env.versions.node || ort.env.versions.common : '?'}: ` +
              `loaded ${args.model} in ${loadMs.toFixed(1)} ms`);
  let results;
  const times = [];
  for (let r = 0; r < args.runs; r++) {
    const s = process.hrtime.bigint();
    results = await session.run(feeds);
    const ms = Number(process.hrtime.bigint() - s) / 1e6;
    times.push(ms);
    for (const [out, inp] of args.feeds) feeds[inp] = results[out];
    if (!args.quiet) console.log(`run ${r + 1}: ${ms.toFixed(3)} ms`);
  }
  if (args.runs > 1) {
    const sorted = [...times].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(`runs ${args.runs}: min ${sorted[0].toFixed(3)} ms, median ${median.toFixed(3)} ms, ` +
                `max ${sorted[sorted.length - 1].toFixed(3)} ms`);
  }

  fs.mkdirSync(args.outputDir, { recursive: true });
  for (const name of session.outputNames) {
    const t = results[name];
    const file = path.join(args.outputDir, tensorFileName(name));
    if (t.type === 'string') {
      process.stderr.write(`run_ort.js: skipping string output ${name}\n`);
      continue;
    }
    writeNpy(file, t.type, t.dims.map(Number), t.data);
    console.log(`output ${name}: ${t.type} ${fmtShape(t.dims)} -> ${file}`);
  }
  if (typeof session.release === 'function') await session.release();
}

main().catch((e) => {
  process.stderr.write(`run_ort.js: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
});
