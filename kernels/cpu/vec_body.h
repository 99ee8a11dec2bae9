// The bodies of the VecKernels (vec_kernels.h), written once over GCC vector
// extensions and included by each per-level file (vec__scalar.cc,
// vec__avx2.cc, vec__avx512_vnni.cc) inside its own namespace. The includer defines first:
//   SARAI_VEC_TARGET  the target attribute every function here carries
//             (e.g. __attribute__((target("avx2,fma"))), empty for the
//             baseline): per function, as clang has no `#pragma GCC target`
//   kW        lanes per vector (4, 8 or 16)
//   vf, vi    float / int32 vectors of kW lanes (GCC vector_size types)
//   fmadd     vf fmadd(vf a, vf b, vf c) = a * b + c (fused where the ISA can)
//   lookup8   (levels with a variable permute, kW >= 8; they also define
//             SARAI_VEC_LOOKUP8) vf lookup8(vf t, vi idx): lane i =
//             t[idx[i]] for idx in [0, 8) (GCC's __builtin_shuffle has no
//             clang counterpart). Without it GELU takes verf.
//   pack_u8   void pack_u8(uint8_t* p, vi a, vi b, vi c, vi d): stores the
//             4 kW lanes of a, b, c, d, each in [0, 255], as 4 kW bytes in
//             order (generic vector code has no saturating packs, and GCC
//             narrows a __builtin_convertvector to bytes one lane at a time)
//   kTB, transpose_block
//             transpose_x32's block side and its block:
//             void transpose_block(const uint32_t* s, int64_t lds,
//             uint32_t* d, int64_t ldd): d[i * ldd + k] = s[k * lds + i]
//             for i, k < kTB (kTB = 0: no block, the plain loop only)
//   kTB16, transpose_block_x16
//             the same for transpose_x16 (uint16_t words)
// Not a normal header: no include guard, no includes, internal linkage only
// (every function is static), so the copies for each ISA never merge.

// c in every lane, keeping its bits: c - 0 (0 + c would turn -0 into +0,
// which matters where c multiplies, divides or bounds: x / -0 = -inf).
SARAI_VEC_TARGET static inline vf splat(float c) { return c - vf{}; }
SARAI_VEC_TARGET static inline vf load(const float* p) {
  vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
SARAI_VEC_TARGET static inline void store(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
// The first n < kW floats of p, the other lanes `fill`.
SARAI_VEC_TARGET static inline vf load_tail(const float* p, int64_t n, float fill) {
  float buf[kW];
  for (int i = 0; i < kW; ++i) buf[i] = i < n ? p[i] : fill;
  return load(buf);
}
SARAI_VEC_TARGET static inline void store_tail(float* p, vf v, int64_t n) {
  float buf[kW];
  store(buf, v);
  for (int64_t i = 0; i < n; ++i) p[i] = buf[i];
}
SARAI_VEC_TARGET static inline float hsum(vf v) {
  float s = 0.f;
  for (int i = 0; i < kW; ++i) s += v[i];
  return s;
}
SARAI_VEC_TARGET static inline float hmax(vf v) {
  float m = v[0];
  for (int i = 1; i < kW; ++i) m = m < v[i] ? v[i] : m;
  return m;
}
// Lane-wise "a < b ? b : a", so a NaN in b is ignored (like std::max(a, b)).
SARAI_VEC_TARGET static inline vf vmax(vf a, vf b) { return a < b ? b : a; }
// Lane-wise "b < a ? b : a": a NaN in b is ignored (like std::min(a, b)).
SARAI_VEC_TARGET static inline vf vmin(vf a, vf b) { return b < a ? b : a; }

// x = n ln2 + r with n = round(x / ln2) (the 1.5 * 2^23 trick rounds to
// nearest, and t's low mantissa bits are n), ln2 = C1 + C2 split so n * C1
// is exact; returns r (|r| <= ln2/2 for |x| < 2^22) and sets *n.
SARAI_VEC_TARGET static inline vf exp_reduce(vf x, vi* n) {
  const vf magic = splat(12582912.f);  // 1.5 * 2^23
  const vf t = fmadd(x, splat(1.44269504088896341f), magic);
  const vf nf = t - magic;
  *n = (vi)t - (vi)magic;
  const vf r = fmadd(nf, splat(-0.693359375f), x);
  return fmadd(nf, splat(2.12194440e-4f), r);
}

// exp(x), see vec_kernels.h: exp_reduce, then Cephes' polynomial for e^r on
// [-ln2/2, ln2/2]; 2^n applied as 2^(n/2) * 2^(n - n/2) so that n down to
// -150 (subnormal results) and up to 128 stay in the exponent range.
SARAI_VEC_TARGET static inline vf vexp(vf x) {
  const float kLo = -104.f, kHi = 88.7228394f;
  x = x < kLo ? splat(kLo) : x;  // NaN compares false and stays NaN
  x = x > kHi ? splat(kHi) : x;
  vi n;
  const vf r = exp_reduce(x, &n);
  vf p = splat(1.9875691500e-4f);
  p = fmadd(p, r, splat(1.3981999507e-3f));
  p = fmadd(p, r, splat(8.3334519073e-3f));
  p = fmadd(p, r, splat(4.1665795894e-2f));
  p = fmadd(p, r, splat(1.6666665459e-1f));
  p = fmadd(p, r, splat(5.0000001201e-1f));
  p = fmadd(p, r * r, r + 1.f);
  const vi n1 = n >> 1, n2 = n - n1;
  return p * (vf)((n1 + 127) << 23) * (vf)((n2 + 127) << 23);
}

// exp(x) for softmax_u8_row's arguments, x <= ~0 (a score minus the row's
// maximum), where 8-bit probabilities need far less than vexp's 2 ulp: the
// same reduction, Taylor's degree-5 polynomial for e^r (|r| <= ln2/2:
// relative error <= r^6/720 = 2.4e-6), one 2^n step, x clamped below at -87
// so 2^n stays normal (results under e^-87 = 1.6e-38 come out as
// 1.6e-38: below a probability byte's resolution by 35 orders). NaN stays
// NaN (the clamp's compare is false and the product keeps it); +inf never
// comes (x <= 0 up to rounding).
SARAI_VEC_TARGET static inline vf vexp_softmax(vf x) {
  x = vmax(x, splat(-87.f));
  vi n;
  const vf r = exp_reduce(x, &n);
  vf p = splat(1.f / 120.f);
  p = fmadd(p, r, splat(1.f / 24.f));
  p = fmadd(p, r, splat(1.f / 6.f));
  p = fmadd(p, r, splat(0.5f));
  p = fmadd(p, r * r, r + 1.f);
  return p * (vf)((n + 127) << 23);
}

// erf(x), see vec_kernels.h: both branches for every lane, then a select.
SARAI_VEC_TARGET static inline vf verf(vf x) {
  const vi sign = (vi)x & static_cast<int32_t>(0x80000000u);
  vf a = (vf)((vi)x & 0x7fffffff);
  a = a > 4.f ? splat(4.f) : a;  // erf(4) rounds to 1.f; keeps the polynomial bounded
  const vf s = a * a;
  vf small = splat(-5.99104969e-4f);
  small = fmadd(small, s, splat(4.99339588e-3f));
  small = fmadd(small, s, splat(-2.67667342e-2f));
  small = fmadd(small, s, splat(1.12818025e-1f));
  small = fmadd(small, s, splat(-3.76124859e-1f));
  small = fmadd(small, s, splat(1.28379151e-1f));  // 2/sqrt(pi) - 1
  small = fmadd(small, a, a);
  vf big = splat(1.72948930e-5f);
  big = fmadd(big, a, splat(-3.83208680e-4f));
  big = fmadd(big, a, splat(3.88393435e-3f));
  big = fmadd(big, a, splat(-2.42545605e-2f));
  big = fmadd(big, a, splat(1.06777847e-1f));
  big = fmadd(big, a, splat(6.34846687e-1f));
  big = fmadd(big, a, splat(1.28717512e-1f));
  big = fmadd(big, a, a);
  big = 1.f - vexp(-big);
  const vf r = a > 0.921875f ? big : small;
  return (vf)((vi)r | sign);
}

// GELU's erf, cheaper than verf (which the Erf op keeps for its relative
// accuracy near 0; GELU adds erf to 1, so absolute accuracy is what counts):
// for v = |x| sqrt 2 = 2 |x / sqrt 2| in [0, 8), piece k = floor(v) is a
// degree-7 polynomial in u = v - k - 1/2, its coefficients picked per lane
// by a table lookup (vpermps at levels avx2 and up) instead of evaluating
// two branches and an exp. Fitted by tools/scripts/fit_gelu_erf.py, which
// prints this table: |error| <= 6.4e-8 (about an ulp of erf), in float32
// with FMA.
static constexpr float kGeluErf[8][8] = {
    {2.763263881e-01f, 7.111556530e-01f, 9.229001403e-01f, 9.866716862e-01f, 9.985373020e-01f, 9.998993874e-01f, 9.999957085e-01f, 9.999998808e-01f},  // u^0
    {5.300070643e-01f, 3.214655221e-01f, 1.182605624e-01f, 2.638749778e-02f, 3.571159672e-03f, 2.931386407e-04f, 1.459450596e-05f, 4.407144161e-07f},  // u^1
    {-6.625074148e-02f, -1.205495372e-01f, -7.391293347e-02f, -2.308905125e-02f, -4.017539322e-03f, -4.030668642e-04f, -2.371733353e-05f, -8.265176916e-07f},  // u^2
    {-3.864631057e-02f, 3.348543774e-03f, 2.094198577e-02f, 1.126967371e-02f, 2.715564100e-03f, 3.450475342e-04f, 2.447657971e-05f, 9.962914191e-07f},  // u^3
    {7.933409885e-03f, 9.417226538e-03f, -3.832519869e-04f, -3.006595420e-03f, -1.193016069e-03f, -2.036069054e-04f, -1.788558620e-05f, -8.615884326e-07f},  // u^4
    {2.501133364e-03f, -1.663033967e-03f, -1.474579796e-03f, 2.068272588e-04f, 3.331268672e-04f, 8.613408863e-05f, 9.800896805e-06f, 5.728105634e-07f},  // u^5
    {-6.146988017e-04f, -4.153564223e-04f, 3.218389465e-04f, 1.413984428e-04f, -4.343058026e-05f, -2.606017188e-05f, -4.277482731e-06f, -3.233179200e-07f},  // u^6
    {-1.234636729e-04f, 1.397302112e-04f, 2.925873559e-05f, -4.635227378e-05f, -5.636940841e-06f, 4.967313544e-06f, 1.356234975e-06f, 1.339532218e-07f},  // u^7
};

#ifdef SARAI_VEC_LOOKUP8
// The 8 coefficients of one power for the 8 pieces, in a vector's first lanes.
SARAI_VEC_TARGET static inline vf lut8(const float (&tab)[8]) {
  vf t = splat(0.f);
  for (int k = 0; k < 8; ++k) t[k] = tab[k];
  return t;
}

// 0.5 x (1 + erf(x / sqrt 2)); c: the tables of kGeluErf. erf is exactly
// +-1 from v >= 7.9 (|x| >= 5.59, where erf rounds to 1 in float32) and
// never above 1, so the far negative side gives -0 as before; NaN stays
// NaN (v = NaN, u = NaN).
SARAI_VEC_TARGET static inline vf vgelu(vf x, const vf (&c)[8]) {
  const vf v = vmin((vf)((vi)x & 0x7fffffff) * 1.41421356237309505f, splat(8.f));
  // The piece: floor(v) by truncation, of v < 8 (v = 8 and NaN take piece 7;
  // NaN's u stays NaN), so the conversion never sees a NaN.
  const vi k = __builtin_convertvector(v < 8.f ? v : splat(7.f), vi);
  const vf u = v - __builtin_convertvector(k, vf) - 0.5f;
  vf p = lookup8(c[7], k);
  for (int j = 6; j >= 0; --j) p = fmadd(p, u, lookup8(c[j], k));
  p = v >= 7.9f ? splat(1.f) : vmin(p, splat(1.f));
  const vf erf = (vf)((vi)p | ((vi)x & static_cast<int32_t>(0x80000000u)));
  return x * 0.5f * (1.f + erf);
}
#else
// Level scalar (SSE2: no variable permute; a lane-by-lane lookup measured
// 1.5x slower than verf): through verf.
SARAI_VEC_TARGET static inline vf vgelu(vf x) { return x * 0.5f * (1.f + verf(x * 0.70710678118654752f)); }
#endif

// Never exp of a large positive number: e = exp(-|x|) in (0, 1].
SARAI_VEC_TARGET static inline vf vsigmoid(vf x) {
  const vf e = vexp((vf)((vi)x | static_cast<int32_t>(0x80000000u)));
  const vf r = 1.f / (1.f + e);
  return x >= 0.f ? r : e * r;
}

// max(0, min(1, alpha x + beta)) by comparisons (NaN stays), unfused like
// the scalar reference.
SARAI_VEC_TARGET static inline vf vhard_sigmoid(vf x, float alpha, float beta) {
  vf v = x * alpha;
  v = v + beta;
  v = v < 0.f ? splat(0.f) : v;
  return v > 1.f ? splat(1.f) : v;
}

SARAI_VEC_TARGET static inline vf vclip(vf v, vf lo, vf hi) {
  const vf a = v < lo ? lo : v;
  return a > hi ? hi : a;
}

// y[i] = EXPR for n floats, EXPR a vector expression in v: whole vectors,
// then one padded tail. (A macro, not a lambda, so it needs no target
// attribute of its own.)
#define SARAI_VEC_MAP(x, y, n, EXPR)                                        \
  do {                                                                      \
    int64_t i_ = 0;                                                         \
    for (; i_ + kW <= (n); i_ += kW) {                                      \
      const vf v = load((x) + i_);                                          \
      store((y) + i_, EXPR);                                                \
    }                                                                       \
    if (i_ < (n)) {                                                         \
      const vf v = load_tail((x) + i_, (n) - i_, 0.f);                      \
      store_tail((y) + i_, EXPR, (n) - i_);                                 \
    }                                                                       \
  } while (0)

SARAI_VEC_TARGET static void erf_n(const float* x, float* y, int64_t n) { SARAI_VEC_MAP(x, y, n, verf(v)); }
SARAI_VEC_TARGET static void gelu_n(const float* x, float* y, int64_t n) {
#ifdef SARAI_VEC_LOOKUP8
  vf c[8];
  for (int j = 0; j < 8; ++j) c[j] = lut8(kGeluErf[j]);
  SARAI_VEC_MAP(x, y, n, vgelu(v, c));
#else
  SARAI_VEC_MAP(x, y, n, vgelu(v));
#endif
}
SARAI_VEC_TARGET static void sigmoid_n(const float* x, float* y, int64_t n) { SARAI_VEC_MAP(x, y, n, vsigmoid(v)); }
SARAI_VEC_TARGET static void hard_swish_n(const float* x, float* y, int64_t n) {
  SARAI_VEC_MAP(x, y, n, v * vhard_sigmoid(v, 1.f / 6.f, 0.5f));
}
SARAI_VEC_TARGET static void hard_sigmoid_n(const float* x, float* y, int64_t n, float alpha, float beta) {
  SARAI_VEC_MAP(x, y, n, vhard_sigmoid(v, alpha, beta));
}
SARAI_VEC_TARGET static void clip_n(const float* x, float* y, int64_t n, float lo, float hi) {
  const vf vlo = splat(lo), vhi = splat(hi);
  SARAI_VEC_MAP(x, y, n, vclip(v, vlo, vhi));
}

SARAI_VEC_TARGET static void softmax_row(const float* x, float* y, int64_t n) {
  const float kNegInf = -__builtin_inff();
  vf m = splat(kNegInf);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) m = vmax(m, load(x + i));
  if (i < n) m = vmax(m, load_tail(x + i, n - i, kNegInf));
  const vf mx = splat(hmax(m));
  vf sum = splat(0.f);
  for (i = 0; i + kW <= n; i += kW) {
    const vf e = vexp(load(x + i) - mx);
    sum += e;
    store(y + i, e);
  }
  if (i < n) {
    const vf e = vexp(load_tail(x + i, n - i, kNegInf) - mx);  // padding: exp(-inf) = 0
    sum += e;
    store_tail(y + i, e, n - i);
  }
  const vf inv = splat(1.f / hsum(sum));
  for (i = 0; i + kW <= n; i += kW) store(y + i, load(y + i) * inv);
  if (i < n) store_tail(y + i, load_tail(y + i, n - i, 0.f) * inv, n - i);
}

template <int Op>
SARAI_VEC_TARGET static inline vf apply(vf a, vf b) {
  if constexpr (Op == 0) return a + b;
  if constexpr (Op == 1) return a - b;
  if constexpr (Op == 2) return a * b;
  return a / b;
}

template <int Op>
SARAI_VEC_TARGET static void binary_op(const float* a, int64_t sa, const float* b, int64_t sb, float* r, int64_t n) {
  int64_t i = 0;
  if (sa && sb) {
    for (; i + kW <= n; i += kW) store(r + i, apply<Op>(load(a + i), load(b + i)));
    if (i < n) store_tail(r + i, apply<Op>(load_tail(a + i, n - i, 1.f), load_tail(b + i, n - i, 1.f)), n - i);
  } else if (sa) {
    const vf vb = splat(*b);
    for (; i + kW <= n; i += kW) store(r + i, apply<Op>(load(a + i), vb));
    if (i < n) store_tail(r + i, apply<Op>(load_tail(a + i, n - i, 1.f), vb), n - i);
  } else if (sb) {
    const vf va = splat(*a);
    for (; i + kW <= n; i += kW) store(r + i, apply<Op>(va, load(b + i)));
    if (i < n) store_tail(r + i, apply<Op>(va, load_tail(b + i, n - i, 1.f)), n - i);
  } else {
    const vf v = apply<Op>(splat(*a), splat(*b));
    for (; i + kW <= n; i += kW) store(r + i, v);
    if (i < n) store_tail(r + i, v, n - i);
  }
}

SARAI_VEC_TARGET static void binary(VecBinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* r,
                   int64_t n) {
  switch (op) {
    case VecBinaryOp::kAdd: binary_op<0>(a, sa, b, sb, r, n); break;
    case VecBinaryOp::kSub: binary_op<1>(a, sa, b, sb, r, n); break;
    case VecBinaryOp::kMul: binary_op<2>(a, sa, b, sb, r, n); break;
    case VecBinaryOp::kDiv: binary_op<3>(a, sa, b, sb, r, n); break;
  }
}

// Two passes with a correction, so a large common offset costs no accuracy:
// m0 = float mean, then d = x - m0 (exact when x is near m0), and
//   mean = m0 + c,  c = sum(d) / n,  var = sum(d^2) / n - c^2,
//   y = ((x - m0) - c) * inv_std * scale + bias.
SARAI_VEC_TARGET static void layernorm_row(const float* x, float* y, const float* scale, const float* bias, int64_t n,
                          float eps, float* mean_out, float* inv_std_out) {
  vf acc = splat(0.f);
  int64_t i = 0;
  for (; i + kW <= n; i += kW) acc += load(x + i);
  if (i < n) acc += load_tail(x + i, n - i, 0.f);
  const float m0 = hsum(acc) / static_cast<float>(n);
  const vf vm0 = splat(m0);
  vf s1 = splat(0.f), s2 = splat(0.f);
  for (i = 0; i + kW <= n; i += kW) {
    const vf d = load(x + i) - vm0;
    s1 += d;
    s2 = fmadd(d, d, s2);
  }
  if (i < n) {
    const vf d = load_tail(x + i, n - i, m0) - vm0;  // padding: d = 0
    s1 += d;
    s2 = fmadd(d, d, s2);
  }
  const float c = hsum(s1) / static_cast<float>(n);
  float var = hsum(s2) / static_cast<float>(n) - c * c;
  var = var < 0.f ? 0.f : var;
  const float inv_std = 1.f / __builtin_sqrtf(var + eps);
  const vf vc = splat(c), vinv = splat(inv_std);
  for (i = 0; i + kW <= n; i += kW)
    store(y + i, fmadd(((load(x + i) - vm0) - vc) * vinv, load(scale + i), load(bias + i)));
  if (i < n) {
    const int64_t t = n - i;
    store_tail(y + i, fmadd(((load_tail(x + i, t, 0.f) - vm0) - vc) * vinv, load_tail(scale + i, t, 0.f),
                            load_tail(bias + i, t, 0.f)), t);
  }
  *mean_out = m0 + c;
  *inv_std_out = inv_std;
}

// The range pass of DynamicQuantizeLinear, see vec_kernels.h: four
// accumulators per side, each a strict-compare fold starting at *lo / *hi,
// then folded into them lane by lane. An accumulator only ever moves to a
// value strictly beyond its start, so any grouping gives the sequential
// fold's value (and its bits, unless that value is a zero beyond the start).
SARAI_VEC_TARGET static void minmax(const float* x, int64_t n, float* lo_io, float* hi_io) {
  vf lo0 = splat(*lo_io), lo1 = lo0, lo2 = lo0, lo3 = lo0;
  vf hi0 = splat(*hi_io), hi1 = hi0, hi2 = hi0, hi3 = hi0;
  int64_t i = 0;
  for (; i + 4 * kW <= n; i += 4 * kW) {
    const vf a = load(x + i), b = load(x + i + kW), c = load(x + i + 2 * kW), d = load(x + i + 3 * kW);
    lo0 = vmin(lo0, a), lo1 = vmin(lo1, b), lo2 = vmin(lo2, c), lo3 = vmin(lo3, d);
    hi0 = vmax(hi0, a), hi1 = vmax(hi1, b), hi2 = vmax(hi2, c), hi3 = vmax(hi3, d);
  }
  for (; i + kW <= n; i += kW) {
    const vf a = load(x + i);
    lo0 = vmin(lo0, a), hi0 = vmax(hi0, a);
  }
  if (i < n) {
    const vf a = load_tail(x + i, n - i, __builtin_nanf(""));  // padding: NaN, ignored
    lo0 = vmin(lo0, a), hi0 = vmax(hi0, a);
  }
  lo0 = vmin(vmin(lo0, lo1), vmin(lo2, lo3));
  hi0 = vmax(vmax(hi0, hi1), vmax(hi2, hi3));
  float lo = *lo_io, hi = *hi_io;
  for (int k = 0; k < kW; ++k) {
    lo = lo0[k] < lo ? lo0[k] : lo;
    hi = hi0[k] > hi ? hi0[k] : hi;
  }
  *lo_io = lo;
  *hi_io = hi;
}

// saturate_u8(round_half_even(x / scale) + zp) for kW lanes, returned as
// int32 in [0, 255]; `base` is M - zp and `top` M - zp + 255, M = 1.5 * 2^23.
// t = x / scale + M rounds x / scale half to even (the addition rounds to
// an integer, ties to even, as M is even) and is exact for |x / scale| <=
// 2^22; the floats of [2^23, 2^24) are the consecutive integers, so
// clamping t to [base, top] and subtracting base's bits from t's gives
// round(x / scale) + zp saturated to [0, 255], as the scalar code computes
// it in float. Beyond 2^22, t is monotone in x / scale and already past
// base or top (t >= 2^24 > top, or t <= 2^23 < base), and so are +-inf; NaN
// compares false and becomes base, i.e. 0. A division, an addition and two
// compare-selects: nothing an FMA could contract, nothing converted before
// the clamp.
SARAI_VEC_TARGET static inline vi quantize_lanes(vf x, vf scale, vf base, vf top) {
  vf t = x / scale;
  t = t + 12582912.f;
  t = t > base ? t : base;
  t = t < top ? t : top;
  return (vi)t - (vi)base;
}

SARAI_VEC_TARGET static void quantize_u8_n(const float* x, int64_t n, float scale, uint8_t zero_point, uint8_t* out) {
  const vf vs = splat(scale);
  const float base = 12582912.f - static_cast<float>(zero_point);  // exact: integers < 2^24
  const vf vbase = splat(base), vtop = splat(base + 255.f);
  int64_t i = 0;
  for (; i + 4 * kW <= n; i += 4 * kW)
    pack_u8(out + i, quantize_lanes(load(x + i), vs, vbase, vtop),
            quantize_lanes(load(x + i + kW), vs, vbase, vtop),
            quantize_lanes(load(x + i + 2 * kW), vs, vbase, vtop),
            quantize_lanes(load(x + i + 3 * kW), vs, vbase, vtop));
  if (i < n) {
    float buf[4 * kW];
    uint8_t q[4 * kW];
    const int64_t t = n - i;
    for (int k = 0; k < 4 * kW; ++k) buf[k] = k < t ? x[i + k] : 0.f;
    pack_u8(q, quantize_lanes(load(buf), vs, vbase, vtop), quantize_lanes(load(buf + kW), vs, vbase, vtop),
            quantize_lanes(load(buf + 2 * kW), vs, vbase, vtop),
            quantize_lanes(load(buf + 3 * kW), vs, vbase, vtop));
    for (int64_t k = 0; k < t; ++k) out[i + k] = q[k];
  }
}

// min(round_half_even(255 e), 255) for e >= 0, as fma(e, 255, M) - M with
// M = 1.5 * 2^23 (see quantize_lanes); returned as int32 lanes.
SARAI_VEC_TARGET static inline vi round255(vf e) {
  const vf magic = splat(12582912.f);
  vf t = fmadd(e, splat(255.f), magic);
  t = vmin(t, splat(12582912.f + 255.f));
  return (vi)t - (vi)magic;
}

// One vector of attention_scores: fma(a, float(acc - comp) * ks, lnw), the
// subtraction modular, as in the GEMM epilogue.
SARAI_VEC_TARGET static inline vf attention_score(const int32_t* pa, const int32_t* pc, const float* pk,
                                                  const float* pl, vf va) {
  typedef uint32_t vu __attribute__((vector_size(sizeof(vi))));
  vu x, c;
  __builtin_memcpy(&x, pa, sizeof x);
  __builtin_memcpy(&c, pc, sizeof c);
  return fmadd(va, __builtin_convertvector((vi)(x - c), vf) * load(pk), load(pl));
}

// See vec_kernels.h. Rows of whole vectors, then one padded tail per row;
// the running maxima stay kW partial ones per row (a horizontal max per
// call and row cost as much as the block's 4 vectors of scores).
SARAI_VEC_TARGET static void attention_scores(const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n,
                                              const int32_t* comp, const float* ks, const float* a,
                                              const float* lnw, float* u, int64_t ldu, float* rowmax) {
  const int64_t full = n - n % kW;
  for (int64_t i = 0; i < rows; ++i) {
    const int32_t* ai = acc + i * ldacc;
    float* ui = u + i * ldu;
    const vf va = splat(a[i]);
    float* mi = rowmax + i * kScoresMaxLanes;
    vf m = load(mi);
    for (int64_t j = 0; j < full; j += kW) {
      const vf v = attention_score(ai + j, comp + j, ks + j, lnw + j, va);
      store(ui + j, v);
      m = vmax(m, v);
    }
    if (full < n) {
      const int64_t t = n - full;
      int32_t xa[kW] = {}, xc[kW] = {};
      float xk[kW] = {}, xl[kW] = {};
      for (int64_t k = 0; k < t; ++k) xa[k] = ai[full + k], xc[k] = comp[full + k], xk[k] = ks[full + k], xl[k] = lnw[full + k];
      vf v = attention_score(xa, xc, xk, xl, va);
      store_tail(ui + full, v, t);
      for (int64_t k = t; k < kW; ++k) v[k] = -__builtin_inff();
      m = vmax(m, v);
    }
    store(mi, m);
  }
}

// See vec_kernels.h. E = exp(u - M) <= 1 once per element: its byte and its
// share of the sum. The full groups of 4 kW lanes run unmasked with four
// partial sums (no single chain of dependent adds); the last < 4 kW lanes
// run one vector at a time with the lanes past n masked (their loads are in
// bounds by the contract, their values ignored) and their bytes copied out
// of a local buffer, so nothing is written past out[n - 1].
SARAI_VEC_TARGET static float softmax_u8_row(const float* u, int64_t n, float m, const float* invw, uint8_t* out) {
  vi lane;
  for (int k = 0; k < kW; ++k) lane[k] = k;
  const int64_t full = n - n % (4 * kW);
  const vf nm = splat(-m);
  vf s0 = splat(0.f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i < full; i += 4 * kW) {
    const vf e0 = vexp_softmax(load(u + i) + nm), e1 = vexp_softmax(load(u + i + kW) + nm);
    const vf e2 = vexp_softmax(load(u + i + 2 * kW) + nm), e3 = vexp_softmax(load(u + i + 3 * kW) + nm);
    s0 = fmadd(e0, load(invw + i), s0), s1 = fmadd(e1, load(invw + i + kW), s1);
    s2 = fmadd(e2, load(invw + i + 2 * kW), s2), s3 = fmadd(e3, load(invw + i + 3 * kW), s3);
    pack_u8(out + i, round255(e0), round255(e1), round255(e2), round255(e3));
  }
  if (i < n) {
    vi q[4] = {};
    for (int k = 0; i + k * kW < n; ++k) {
      const int64_t j = i + k * kW;
      const vi live = lane < static_cast<int32_t>(n - j);
      const vf e = live ? vexp_softmax(load(u + j) + nm) : splat(0.f);
      s0 += live ? e * load(invw + j) : splat(0.f);  // masked: a NaN past n must not reach the sum
      q[k] = round255(e);
    }
    uint8_t bytes[4 * kW];
    pack_u8(bytes, q[0], q[1], q[2], q[3]);
    __builtin_memcpy(out + i, bytes, static_cast<size_t>(n - i));
  }
  const float sum = hsum((s0 + s1) + (s2 + s3));
  // A NaN or +inf score makes the sum NaN; an overflowing or vanishing
  // scale comes back as NaN too, so the caller takes the float path.
  const float ps = (1.f / 255.f) / sum;
  return ps >= __FLT_MIN__ && ps <= __FLT_MAX__ ? ps : __builtin_nanf("");
}

SARAI_VEC_TARGET static void col_abs_max(const float* x, int64_t ldx, int64_t rows, int64_t n, float* m) {
  int64_t j = 0;
  for (; j + kW <= n; j += kW) {
    vf a = load(m + j);
    for (int64_t r = 0; r < rows; ++r) a = vmax(a, (vf)((vi)load(x + r * ldx + j) & 0x7fffffff));
    store(m + j, a);
  }
  for (; j < n; ++j)
    for (int64_t r = 0; r < rows; ++r) {
      const float v = __builtin_fabsf(x[r * ldx + j]);
      m[j] = m[j] < v ? v : m[j];
    }
}

// round_half_even(x / div) clamped to [-127, 127] as int32 lanes:
// quantize_lanes with zero point 127 and a range of 254, minus 127. `bad`
// collects the lanes whose x is inf or NaN.
SARAI_VEC_TARGET static inline vi quantize_s8_lanes(vf x, vf div, vi* bad) {
  *bad |= ((vi)x & 0x7f800000) == 0x7f800000;
  return quantize_lanes(x, div, splat(12582912.f - 127.f), splat(12582912.f + 127.f)) - 127;
}

SARAI_VEC_TARGET static bool pack_s8_k4(const float* x, int64_t ldx, int64_t rows, int64_t n, const float* col_div,
                                        const float* row_div, int8_t* dst, int64_t pstride, int32_t* colsum) {
  vi bad = vi{} + 0;
  for (int64_t j = 0; j < n; j += kW) {
    const int64_t cols = n - j < kW ? n - j : kW;  // kW divides 16: a block never spans two panels
    vi word = vi{} + 0, sum = vi{} + 0;
    for (int64_t t = 0; t < rows; ++t) {
      const float* row = x + t * ldx + j;
      const vf v = cols == kW ? load(row) : load_tail(row, cols, 0.f);
      const vf div = col_div ? (cols == kW ? load(col_div + j) : load_tail(col_div + j, cols, 1.f))
                             : splat(row_div[t]);
      const vi q = quantize_s8_lanes(v, div, &bad);
      sum += q;
      word |= (q & 0xff) << static_cast<int>(8 * t);
    }
    int8_t* out = dst + (j / 16) * pstride + (j % 16) * 4;
    if (cols == kW) {
      __builtin_memcpy(out, &word, sizeof word);
    } else {
      int32_t w[kW];
      __builtin_memcpy(w, &word, sizeof word);
      __builtin_memcpy(out, w, static_cast<size_t>(cols) * 4);
    }
    if (colsum) {
      int32_t s8[kW];
      __builtin_memcpy(s8, &sum, sizeof sum);
      for (int64_t c = 0; c < cols; ++c) colsum[j + c] += s8[c];
    }
  }
  int32_t b[kW];
  __builtin_memcpy(b, &bad, sizeof bad);
  for (int k = 0; k < kW; ++k)
    if (b[k]) return false;
  return true;
}

// transpose_x32 and transpose_x16 (vec_kernels.h): whole kB x kB blocks by
// `block` (the includer's transpose_block / transpose_block_x16), the rest
// (m % kB words of each kB source rows, then the last n % kB source rows)
// by the plain loop; kB = 0: all of it by the plain loop. Blocks go along
// the source rows (k outer): each source line is read once, while the
// destination's lines, written kB words at a time, stay in L1 (twice as
// fast as i outer at avx2 on the encoder's K transpose, docs/BENCHMARKS.md).
template <int kB, class W, class Block>
SARAI_VEC_TARGET static inline void transpose_by_blocks(const W* src, int64_t lds, W* dst, int64_t ldd, int64_t m,
                                                        int64_t n, Block block) {
  int64_t k = 0;
  if constexpr (kB > 0) {
    for (; k + kB <= n; k += kB) {
      int64_t i = 0;
      for (; i + kB <= m; i += kB) block(src + k * lds + i, lds, dst + i * ldd + k, ldd);
      for (; i < m; ++i)
        for (int64_t c = k; c < k + kB; ++c) dst[i * ldd + c] = src[c * lds + i];
    }
  }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = k; c < n; ++c) dst[i * ldd + c] = src[c * lds + i];
}
SARAI_VEC_TARGET static void transpose_x32(const uint32_t* src, int64_t lds, uint32_t* dst, int64_t ldd, int64_t m,
                                           int64_t n) {
  transpose_by_blocks<kTB>(src, lds, dst, ldd, m, n, transpose_block);
}
SARAI_VEC_TARGET static void transpose_x16(const uint16_t* src, int64_t lds, uint16_t* dst, int64_t ldd, int64_t m,
                                           int64_t n) {
  transpose_by_blocks<kTB16>(src, lds, dst, ldd, m, n, transpose_block_x16);
}

#undef SARAI_VEC_MAP

static const VecKernels kTable = {
    kIsaName,  softmax_row, erf_n,  gelu_n,        sigmoid_n, hard_sigmoid_n,
    hard_swish_n, clip_n,   binary, layernorm_row, minmax,    quantize_u8_n, attention_scores,
    softmax_u8_row, col_abs_max, pack_s8_k4, transpose_x32, transpose_x16,
};
