'use strict';
// Minimal NumPy .npy reader/writer (format versions 1.0, 2.0 and 3.0 on read,
// 1.0 on write). C order only; little-endian (or byte-order-free) dtypes only.
//
//   readNpy(path)  -> { dtype, shape: number[], data: TypedArray }
//   writeNpy(path, dtype, shape, data)
//
// dtype is an onnxruntime-style name: float32, float64, float16, int64, int32,
// int16, int8, uint8, uint16, uint32, uint64, bool. bool data is a Uint8Array
// of 0/1; float16 data is a Uint16Array of raw bits; int64/uint64 data is a
// BigInt64Array/BigUint64Array.

const fs = require('fs');

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

// npy descr (without byte-order char) -> [dtype, TypedArray constructor, bytes]
const DESCR = {
  f4: ['float32', Float32Array, 4],
  f8: ['float64', Float64Array, 8],
  f2: ['float16', Uint16Array, 2],
  i8: ['int64', BigInt64Array, 8],
  i4: ['int32', Int32Array, 4],
  i2: ['int16', Int16Array, 2],
  i1: ['int8', Int8Array, 1],
  u8: ['uint64', BigUint64Array, 8],
  u4: ['uint32', Uint32Array, 4],
  u2: ['uint16', Uint16Array, 2],
  u1: ['uint8', Uint8Array, 1],
  b1: ['bool', Uint8Array, 1],
};
const BY_DTYPE = {};
for (const [d, [name, ctor, size]] of Object.entries(DESCR)) BY_DTYPE[name] = { descr: d, ctor, size };

function parseHeader(text, file) {
  // The header is a Python dict literal, e.g.
  // {'descr': '<f4', 'fortran_order': False, 'shape': (1, 80, 200), }
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text);
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !fortran || !shape) throw new Error(`${file}: cannot parse npy header: ${text.trim()}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isInteger(n) || n < 0) throw new Error(`${file}: bad dimension '${s}' in npy header`);
    return n;
  });
  return { descr: descr[1], fortranOrder: fortran[1] === 'True', shape: dims };
}

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  let headerLen, offset;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    throw new Error(`${file}: unsupported npy format version ${major}.${buf[7]}`);
  }
  const header = buf.subarray(offset, offset + headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const h = parseHeader(header, file);
  if (h.fortranOrder) throw new Error(`${file}: Fortran-order arrays are not supported (save with np.ascontiguousarray)`);
  let order = h.descr[0];
  let code = h.descr.slice(1);
  if (!'<>|='.includes(order)) { code = h.descr; order = '|'; }
  if (code === '?') code = 'b1';
  if (code === 'b') code = 'i1';
  if (code === 'B') code = 'u1';
  const entry = DESCR[code];
  if (!entry) throw new Error(`${file}: unsupported npy dtype '${h.descr}'`);
  const [dtype, Ctor, size] = entry;
  if (order === '>' && size > 1) throw new Error(`${file}: big-endian npy dtype '${h.descr}' is not supported`);
  const count = h.shape.reduce((a, b) => a * b, 1);
  const start = offset + headerLen;
  if (buf.length - start < count * size) {
    throw new Error(`${file}: truncated: expected ${count * size} data bytes, found ${buf.length - start}`);
  }
  // Copy into a fresh, aligned ArrayBuffer.
  const bytes = new Uint8Array(count * size);
  bytes.set(buf.subarray(start, start + count * size));
  const data = new Ctor(bytes.buffer, 0, count);
  return { dtype, shape: h.shape, data };
}

function writeNpy(file, dtype, shape, data) {
  const entry = BY_DTYPE[dtype];
  if (!entry) throw new Error(`cannot write dtype '${dtype}' to npy`);
  const order = entry.size === 1 ? '|' : '<';
  const shapeStr = shape.length === 0 ? '()' : shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${order}${entry.descr}', 'fortran_order': False, 'shape': ${shapeStr}, }`;
  // Pad with spaces so that magic + version + length + header + '\n' is a multiple of 64.
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`writeNpy: ${count} elements expected, got ${data.length}`);
  let body;
  if (dtype === 'bool') {
    body = Buffer.alloc(count);
    for (let i = 0; i < count; i++) body[i] = data[i] ? 1 : 0;
  } else {
    body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

module.exports = { readNpy, writeNpy, DTYPES: Object.keys(BY_DTYPE) };
