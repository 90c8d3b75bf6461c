// One instrumented training step of a d -> n1 -> n2 -> d MLP in a single pass over the points.
//
// Points are processed in tiles of L points, one point per float lane of a GCC vector: L = 16 (512 bits)
// where the CPU has AVX-512, else L = 8 (256 bits, AVX2). Wider vectors than the hardware's are split by
// the compiler into several registers each, which spills the reverse pass's accumulators to memory: on
// AVX2, L = 16 ran 3.6x slower than L = 8. For each tile, with z = x + sigma * eps:
//   forward   h1 = W1 z + b1, a1 = phi(h1), h2 = W2 a1 + b2, a2 = phi(h2), s = W3 a2 + b3;
//   divergence (ISM fitting term, Eq. 8): div s = sum_k D2_k u_k, u = C D1, C = W2 * (W1 W3)^T;
//   metrics   |s|^2, |eps|^2, |s + eps/sigma|^2, div s and <s, eps>/sigma (README, What a run computes);
//   reverse   for the cotangent s (ISM, Eq. 8, plus the divergence) and s + eps/sigma (DSM-S, Eq. 9):
//             (another noise kernel passes r = -grad_z log q(z|x) per point: eps/sigma becomes r, |eps|^2
//             becomes sigma^2 |r|^2, so fit_dsm = <s, r> = -<s, grad_z log q(z|x)> for every kernel)
//             c2 = phi'(h2) W3^T sbar (+ phi''(h2) u for ISM), c1 = phi'(h1) W2^T c2 (+ phi''(h1) v,
//             v = C^T D2, for ISM), and their outer products with the layer inputs;
//   variant   a denoising variant (targets.py) passes rv = -t, its regression target negated, per point:
//             a third reverse pass for the cotangent s + rv and fit_vr = <s, rv>; a per-point offset q is
//             added to fit_vr (dsm_cv: -<s(x), eps>/sigma at the clean point, whose gradient the caller
//             adds; with q and no rv, fit_vr = fit_dsm + q and the DSM-S pass is the variant's).
// The divergence's dependence on the weights through C is returned as G_C = sum_points D2 D1^T; the
// caller turns it into W1, W2, W3 gradient terms once per step. Nothing per point is written to memory.
// Metric sums are float64 per point (as on the torch path); the gradients' float lane sums are flushed
// to float64 after every block of at most BLOCK_TILES tiles of one noise row.
// Plain C++ with a C entry point (no torch or Python headers): it compiles in seconds, and one build
// serves every Python environment that shares the cache. dsmexp/fused.py loads it with ctypes.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

#ifndef DSMEXP_LANES
#if defined(__AVX512F__)
#define DSMEXP_LANES 16
#else
#define DSMEXP_LANES 8
#endif
#endif
constexpr int L = DSMEXP_LANES;
constexpr int BLOCK_TILES = 512 / L;  // tiles per float32 partial sum (512 points)
constexpr int RB = L == 16 ? 8 : 4;
constexpr int64_t GROUP_UNITS = 16;  // blocks per scheduled unit of work (8 noise rows at N = 1000)
typedef float vf __attribute__((vector_size(4 * L)));
typedef int vi __attribute__((vector_size(4 * L)));
typedef double vd __attribute__((vector_size(8 * L)));  // the 16 lanes in float64, for metric sums

inline vf splat(float a) { return vf{} + a; }

inline vf load(const float* p, int valid) {
  vf v{};
  if (valid == L)
    std::memcpy(&v, p, sizeof v);  // a full tile: one vector load
  else
    std::memcpy(&v, p, sizeof(float) * valid);
  return v;
}

inline float lane_sum(vf v) {
  float out = 0.f;
  for (int p = 0; p < L; ++p) out += v[p];
  return out;
}

inline double lane_sum(vd v) {
  double out = 0.0;
  for (int p = 0; p < L; ++p) out += v[p];
  return out;
}

inline vd to_double(vf v) { return __builtin_convertvector(v, vd); }

// tanh without libm: tanh|x| = -m / (2 + m) with m = expm1(-2|x|) = 2^k (expm1(r) + 1) - 1,
// -2|x| = k ln2 + r, |r| <= ln2 / 2, expm1(r) by its Taylor series to r^7 (relative error < 2e-8).
inline vf tanh_v(vf x) {
  const vi bits = (vi)x;
  const vi sign = bits & (int)0x80000000;
  vf y = (vf)(bits & 0x7fffffff) * -2.0f;
  y = y < -40.0f ? splat(-40.0f) : y;  // exp(-40) is below float resolution next to 1
  const float round_magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const vf kf = (y * 1.44269504088896341f + round_magic) - round_magic;
  const vf r = (y - kf * 0.693145751953125f) - kf * 1.42860682030941723212e-6f;  // ln2 split hi + lo
  vf p = splat(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r;
  const vi k = __builtin_convertvector(kf, vi);
  const vf scale = (vf)((k + 127) << 23);
  const vf m = scale * p + (scale - 1.0f);
  // 1 / (2 + m) with 2 + m in (1, 2]: a first guess refined by Newton steps (each squares the error),
  // cheaper than a vector division. AVX-512's estimate is good to 2^-14: one step; otherwise a linear
  // guess good to 1/17: three steps.
  const vf y2 = m + 2.0f;
#if defined(__AVX512F__)
  vf inv = _mm512_rcp14_ps(y2);
#else
  vf inv = 1.41176470588235294f - 0.47058823529411765f * y2;
  inv = inv * (2.0f - y2 * inv);
  inv = inv * (2.0f - y2 * inv);
#endif
  inv = inv * (2.0f - y2 * inv);
  const vf t = -m * inv;
  return (vf)((vi)t | sign);
}

// Each activation gives a = phi(h), slope = phi'(h) and curvature = phi''(h) (models.ACTIVATIONS).
struct Tanh {
  static inline void eval(vf h, vf& a, vf& slope, vf& curv) {
    a = tanh_v(h);
    slope = 1.0f - a * a;
    curv = -2.0f * a * slope;
  }
};

struct Sigmoid {  // sigmoid(h) = (1 + tanh(h / 2)) / 2
  static inline void eval(vf h, vf& a, vf& slope, vf& curv) {
    a = 0.5f + 0.5f * tanh_v(0.5f * h);
    slope = a * (1.0f - a);
    curv = slope * (1.0f - 2.0f * a);
  }
};

struct Silu {  // silu(h) = h g, g = sigmoid(h)
  static inline void eval(vf h, vf& a, vf& slope, vf& curv) {
    const vf g = 0.5f + 0.5f * tanh_v(0.5f * h);
    a = h * g;
    slope = g * (1.0f + h * (1.0f - g));
    curv = g * (1.0f - g) * (2.0f + h * (1.0f - 2.0f * g));
  }
};

struct Inputs {
  const float* x;  // (d, N) feature-major data
  const float* e;  // (d, M, N) feature-major noise, or null when sigma = 0
  const float* r;  // (d, M, N) -grad_z log q(z|x) of a non-Gaussian kernel, or null (Gaussian: e / sigma)
  const float* rv;  // (d, M, N) a denoising variant's -t, or null
  const float* q;   // (M, N) a per-point offset of fit_vr, or null
  bool vr;          // sum fit_vr's moments
  int64_t N, M;
  float sigma, inv_sigma;
  double sigma_d, inv_sigma_d;
  int d, n1, n2;
  const float *w1, *b1, *w2, *b2, *w3, *b3, *c;  // c = W2 * (W1 W3)^T, (n2, n1)
  double shift_div, shift_fit, shift_vr;
};

// Offsets of each parameter's gradient in torch's parameter order: w1, b1, w2, b2, w3, b3.
struct Layout {
  int ow1, ob1, ow2, ob2, ow3, ob3, size;
  Layout(int d, int n1, int n2) {
    ow1 = 0;
    ob1 = ow1 + n1 * d;
    ow2 = ob1 + n1;
    ob2 = ow2 + n2 * n1;
    ow3 = ob2 + n2;
    ob3 = ow3 + d * n2;
    size = ob3 + d;
  }
};

// Per-point metric sums, in float64 from the float32 s and eps as on the torch path: |s|^2, |e|^2,
// |s + e/sigma|^2, div - shift, (div - shift)^2, fit - shift, (fit - shift)^2 with fit = <s, e>/sigma,
// fit_vr - shift, (fit_vr - shift)^2.
constexpr int N_METRICS = 9;
constexpr int COTANGENTS = 3;  // ISM, DSM-S, a denoising variant

// One thread's scratch (per-tile vectors) and sums (float per block, float64 per thread).
struct Thread {
  int d, n1, n2, n1v, n1p;
  Layout lay;
  std::vector<vf> z, e, o, ov, s, a1, d1, k1, a2, d2, k2, u, v, sb, c2, c1;  // c2, c1: a block per cotangent
  std::vector<float> a1t, d1t;       // (L, n1p): the tile transposed for the outer products
  std::vector<vd> mlane;             // lane sums of the metrics
  std::vector<vf> lane;              // lane sums per cotangent: w1, b1, b2, w3, b3
  std::vector<float> outer;          // W2 rows of ISM, DSM-S, C rows, W2 rows of the variant: (n2, n1p) each
  std::vector<double> metrics, grads, gc;

  Thread(int d_, int n1_, int n2_)
      : d(d_), n1(n1_), n2(n2_), n1v((n1_ + L - 1) / L), n1p(n1v * L), lay(d_, n1_, n2_),
        z(d_), e(d_), o(d_), ov(d_), s(d_), a1(n1_), d1(n1_), k1(n1_), a2(n2_), d2(n2_), k2(n2_), u(n2_),
        v(n1_), sb(COTANGENTS * d_), c2(COTANGENTS * n2_), c1(COTANGENTS * n1_), a1t(L * n1p, 0.f),
        d1t(L * n1p, 0.f), mlane(N_METRICS), lane(COTANGENTS * lane_per_cotangent()),
        outer(4 * n2_ * n1p, 0.f), metrics(N_METRICS, 0.0), grads(COTANGENTS * lay.size, 0.0),
        gc(n2_ * n1_, 0.0) {}

  // The block of `outer` holding cotangent r's W2 rows (block 2 holds the C rows).
  static int w2_block(int r) { return r < 2 ? r : 3; }

  int lane_per_cotangent() const { return n1 * d + n1 + n2 + d * n2 + d; }

  void clear_sums() {
    std::fill(metrics.begin(), metrics.end(), 0.0);
    std::fill(grads.begin(), grads.end(), 0.0);
    std::fill(gc.begin(), gc.end(), 0.0);
  }

  // Add the block's float sums to the float64 sums and clear them.
  void flush() {
    for (int q = 0; q < N_METRICS; ++q) metrics[q] += lane_sum(mlane[q]);
    for (int r = 0; r < COTANGENTS; ++r) {
      const vf* g = lane.data() + r * lane_per_cotangent();
      double* out = grads.data() + r * lay.size;
      int at = 0;
      for (int q = 0; q < n1 * d; ++q) out[lay.ow1 + q] += (double)lane_sum(g[at++]);
      for (int q = 0; q < n1; ++q) out[lay.ob1 + q] += (double)lane_sum(g[at++]);
      for (int q = 0; q < n2; ++q) out[lay.ob2 + q] += (double)lane_sum(g[at++]);
      for (int q = 0; q < d * n2; ++q) out[lay.ow3 + q] += (double)lane_sum(g[at++]);
      for (int q = 0; q < d; ++q) out[lay.ob3 + q] += (double)lane_sum(g[at++]);
      const float* w2rows = outer.data() + w2_block(r) * n2 * n1p;
      for (int k = 0; k < n2; ++k)
        for (int j = 0; j < n1; ++j) out[lay.ow2 + k * n1 + j] += (double)w2rows[k * n1p + j];
    }
    const float* crows = outer.data() + 2 * n2 * n1p;
    for (int k = 0; k < n2; ++k)
      for (int j = 0; j < n1; ++j) gc[k * n1 + j] += (double)crows[k * n1p + j];
    std::fill(mlane.begin(), mlane.end(), vd{});
    std::fill(lane.begin(), lane.end(), vf{});
    std::fill(outer.begin(), outer.end(), 0.f);
  }
};

// Write the L x L block rows[0..L) (lane = point) transposed: out[p * stride + j] = rows[j][p].
// Four stages of two-input shuffles, each swapping the off-diagonal s x s blocks of every 2s x 2s block.
#if DSMEXP_LANES == 16
inline void transpose_store(const vf* rows, float* out, int stride) {
  vf r[L];
  for (int j = 0; j < L; ++j) r[j] = rows[j];
  const vi lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
  const vi hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
  const vi lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const vi hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  const vi lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  const vi hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
  const vi lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const vi hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const vi* lo[4] = {&lo1, &lo2, &lo4, &lo8};
  const vi* hi[4] = {&hi1, &hi2, &hi4, &hi8};
  for (int stage = 0; stage < 4; ++stage) {
    const int s = 1 << stage;
    for (int i = 0; i < L; ++i) {
      if (i & s) continue;
      const vf a = r[i], b = r[i + s];
      r[i] = __builtin_shuffle(a, b, *lo[stage]);
      r[i + s] = __builtin_shuffle(a, b, *hi[stage]);
    }
  }
  for (int p = 0; p < L; ++p) std::memcpy(out + p * stride, &r[p], sizeof(vf));
}
#else
inline void transpose_store(const vf* rows, float* out, int stride) {
  for (int p = 0; p < L; ++p)
    for (int j = 0; j < L; ++j) out[p * stride + j] = rows[j][p];
}
#endif

// rows[k] += sum_p left[k][p] * right[p] for RB rows k starting at k0 (right: the transposed tile).
// A, B, D: the W2 rows of the ISM, DSM-S and variant cotangents (right: a1); C: G_C (right: d1).
template <int RB, bool A, bool B, bool C, bool D>
inline void outer_rows(Thread& t, int k0, const vf* left_a, const vf* left_b, const vf* left_c,
                       const vf* left_d) {
  float* ra = t.outer.data();
  float* rb = ra + t.n2 * t.n1p;
  float* rc = rb + t.n2 * t.n1p;
  float* rd = rc + t.n2 * t.n1p;
  for (int jv = 0; jv < t.n1v; ++jv) {
    vf acc_a[RB], acc_b[RB], acc_c[RB], acc_d[RB];
    for (int q = 0; q < RB; ++q) {
      const int at = (k0 + q) * t.n1p + jv * L;
      if (A) std::memcpy(&acc_a[q], ra + at, sizeof(vf));
      if (B) std::memcpy(&acc_b[q], rb + at, sizeof(vf));
      if (C) std::memcpy(&acc_c[q], rc + at, sizeof(vf));
      if (D) std::memcpy(&acc_d[q], rd + at, sizeof(vf));
    }
    for (int p = 0; p < L; ++p) {
      vf ar, dr;
      std::memcpy(&ar, t.a1t.data() + p * t.n1p + jv * L, sizeof(vf));
      if (C) std::memcpy(&dr, t.d1t.data() + p * t.n1p + jv * L, sizeof(vf));
      for (int q = 0; q < RB; ++q) {
        if (A) acc_a[q] += left_a[k0 + q][p] * ar;
        if (B) acc_b[q] += left_b[k0 + q][p] * ar;
        if (C) acc_c[q] += left_c[k0 + q][p] * dr;
        if (D) acc_d[q] += left_d[k0 + q][p] * ar;
      }
    }
    for (int q = 0; q < RB; ++q) {
      const int at = (k0 + q) * t.n1p + jv * L;
      if (A) std::memcpy(ra + at, &acc_a[q], sizeof(vf));
      if (B) std::memcpy(rb + at, &acc_b[q], sizeof(vf));
      if (C) std::memcpy(rc + at, &acc_c[q], sizeof(vf));
      if (D) std::memcpy(rd + at, &acc_d[q], sizeof(vf));
    }
  }
}

// out[j] = sum_k w[k * n1 + j] in[k] (a transposed matrix-vector product per lane), with n1 independent
// accumulators so the sums do not wait on each other.
template <int N1_>
inline void gemv_t(const float* w, const vf* in, int n2, int n1, vf* out) {
  if constexpr (N1_ > 0) {
    vf acc[N1_] = {};
    for (int k = 0; k < n2; ++k) {
      const vf x = in[k];
      for (int j = 0; j < N1_; ++j) acc[j] += w[k * N1_ + j] * x;
    }
    for (int j = 0; j < N1_; ++j) out[j] = acc[j];
  } else {
    for (int j = 0; j < n1; ++j) out[j] = vf{};
    for (int k = 0; k < n2; ++k) {
      const vf x = in[k];
      for (int j = 0; j < n1; ++j) out[j] += w[k * n1 + j] * x;
    }
  }
}

// Reverse pass of one cotangent sbar (already in t.sb[r]), masked; div: add the divergence's terms.
template <int D_, int N1_, int N2_>
inline void reverse(const Inputs& in, Thread& t, int r, bool div, vf mask) {
  const int d = D_ ? D_ : in.d, n1 = N1_ ? N1_ : in.n1, n2 = N2_ ? N2_ : in.n2;
  // Distinct arrays of the thread's scratch: __restrict__ lets the compiler keep values in registers.
  const vf* __restrict__ sb = t.sb.data() + r * d;
  const vf* __restrict__ z = t.z.data();
  const vf* __restrict__ a2 = t.a2.data();
  const vf* __restrict__ d1 = t.d1.data();
  const vf* __restrict__ k1 = t.k1.data();
  const vf* __restrict__ d2 = t.d2.data();
  const vf* __restrict__ k2 = t.k2.data();
  const vf* __restrict__ u = t.u.data();
  const vf* __restrict__ v = t.v.data();
  vf* __restrict__ c2 = t.c2.data() + r * n2;
  vf* __restrict__ c1 = t.c1.data() + r * n1;
  vf* __restrict__ g = t.lane.data() + r * t.lane_per_cotangent();
  vf* __restrict__ gw1 = g;
  vf* __restrict__ gb1 = gw1 + n1 * d;
  vf* __restrict__ gb2 = gb1 + n1;
  vf* __restrict__ gw3 = gb2 + n2;
  vf* __restrict__ gb3 = gw3 + d * n2;
  for (int i = 0; i < d; ++i) {
    const vf sbi = sb[i];
    gb3[i] += sbi;
    for (int k = 0; k < n2; ++k) gw3[i * n2 + k] += sbi * a2[k];
  }
  for (int k = 0; k < n2; ++k) {
    vf acc{};
    for (int i = 0; i < d; ++i) acc += in.w3[i * n2 + k] * sb[i];
    acc *= d2[k];
    if (div) acc += k2[k] * u[k] * mask;
    c2[k] = acc;
    gb2[k] += acc;
  }
  gemv_t<N1_>(in.w2, c2, n2, n1, c1);
  for (int j = 0; j < n1; ++j) {
    vf acc = c1[j] * d1[j];
    if (div) acc += k1[j] * v[j] * mask;
    c1[j] = acc;
    gb1[j] += acc;
    for (int i = 0; i < d; ++i) gw1[j * d + i] += acc * z[i];
  }
}

template <int D_, int N1_, int N2_, class Act, bool ISM, bool DSM, bool VR, bool NOISY>
void process_block(const Inputs& in, Thread& t, int64_t row, int64_t tile_begin, int64_t tile_end) {
  const int d = D_ ? D_ : in.d, n1 = N1_ ? N1_ : in.n1, n2 = N2_ ? N2_ : in.n2;
  vf* z = t.z.data();
  vf* e = t.e.data();
  vf* o = t.o.data();  // the DSM cotangent's offset: e / sigma, or the kernel's r
  vf* ov = t.ov.data();  // the variant's offset rv
  vf* s = t.s.data();
  vf* a1 = t.a1.data();
  vf* d1 = t.d1.data();
  vf* k1 = t.k1.data();
  vf* a2 = t.a2.data();
  vf* d2 = t.d2.data();
  vf* k2 = t.k2.data();
  vf* u = t.u.data();
  vd* m = t.mlane.data();
  for (int64_t tile = tile_begin; tile < tile_end; ++tile) {
    const int64_t n0 = tile * L;
    const int valid = (int)std::min<int64_t>(L, in.N - n0);
    vf mask = splat(1.0f);
    if (valid < L)
      for (int p = valid; p < L; ++p) mask[p] = 0.0f;
    for (int i = 0; i < d; ++i) {
      const vf xi = load(in.x + i * in.N + n0, valid);
      if (NOISY) {
        e[i] = load(in.e + (i * in.M + row) * in.N + n0, valid);
        z[i] = xi + in.sigma * e[i];
        o[i] = in.r ? load(in.r + (i * in.M + row) * in.N + n0, valid) : e[i] * in.inv_sigma;
        if (VR) ov[i] = load(in.rv + (i * in.M + row) * in.N + n0, valid);
      } else {
        z[i] = xi;
      }
    }
    for (int j = 0; j < n1; ++j) {
      vf h = splat(in.b1[j]);
      for (int i = 0; i < d; ++i) h += in.w1[j * d + i] * z[i];
      Act::eval(h, a1[j], d1[j], k1[j]);
    }
    for (int k = 0; k < n2; ++k) {
      vf h = splat(in.b2[k]);
      for (int j = 0; j < n1; ++j) h += in.w2[k * n1 + j] * a1[j];
      Act::eval(h, a2[k], d2[k], k2[k]);
    }
    vf div{};
    for (int k = 0; k < n2; ++k) {
      vf acc{};
      for (int j = 0; j < n1; ++j) acc += in.c[k * n1 + j] * d1[j];
      u[k] = acc;
      div += d2[k] * acc;
    }
    vd ss{}, ee{}, se{}, rr{}, sv{};
    for (int i = 0; i < d; ++i) {
      vf si = splat(in.b3[i]);
      for (int k = 0; k < n2; ++k) si += in.w3[i * n2 + k] * a2[k];
      s[i] = si;
      const vd sd = to_double(si);
      ss += sd * sd;
      if (NOISY && in.r) {  // sums of sigma^2 |r|^2, <s, r> and |s + r|^2, in float64 from the float32 r
        const vd od = to_double(o[i]);
        const vd res = sd + od;
        ee += (od * in.sigma_d) * (od * in.sigma_d);
        se += sd * od;
        rr += res * res;
      } else if (NOISY) {
        const vd ed = to_double(e[i]);
        const vd res = sd + ed * in.inv_sigma_d;
        ee += ed * ed;
        se += sd * ed;
        rr += res * res;
      }
      if (NOISY && in.vr && in.rv) sv += sd * to_double(ov[i]);
    }
    const vd maskd = to_double(mask);
    const vd dc = (to_double(div) - in.shift_div) * maskd;
    m[0] += ss * maskd;
    m[3] += dc;
    m[4] += dc * dc;
    if (NOISY) {
      const vd fc = ((in.r ? se : se / in.sigma_d) - in.shift_fit) * maskd;
      m[1] += ee * maskd;
      m[2] += rr * maskd;
      m[5] += fc;
      m[6] += fc * fc;
    }
    if (NOISY && in.vr) {  // fit_vr = <s, rv> (or fit_dsm) + q
      vd fit = in.rv ? sv : (in.r ? se : se / in.sigma_d);
      if (in.q) fit += to_double(load(in.q + row * in.N + n0, valid));
      const vd vc = (fit - in.shift_vr) * maskd;
      m[7] += vc;
      m[8] += vc * vc;
    }
    // Reverse passes: row 0 carries ISM (cotangent s, plus the divergence), row 1 DSM-S (s + e/sigma),
    // row 2 the variant (s + rv).
    if (ISM) {
      gemv_t<N1_>(in.c, d2, n2, n1, t.v.data());
      for (int i = 0; i < d; ++i) t.sb[i] = s[i] * mask;
      reverse<D_, N1_, N2_>(in, t, 0, true, mask);
    }
    if (DSM) {
      for (int i = 0; i < d; ++i) t.sb[d + i] = (s[i] + o[i]) * mask;
      reverse<D_, N1_, N2_>(in, t, 1, false, mask);
    }
    if (VR) {
      for (int i = 0; i < d; ++i) t.sb[2 * d + i] = (s[i] + ov[i]) * mask;
      reverse<D_, N1_, N2_>(in, t, 2, false, mask);
    }
    // Outer products over the tile's points: W2 gradients (c2 a1^T) and, for ISM, G_C (D2 D1^T).
    if (L == 16 && N1_ == L) {
      transpose_store(a1, t.a1t.data(), L);
      if (ISM) {
        vf d1m[L];
        for (int j = 0; j < L; ++j) d1m[j] = d1[j] * mask;
        transpose_store(d1m, t.d1t.data(), L);
      }
    } else {
      for (int j = 0; j < n1; ++j)
        for (int p = 0; p < L; ++p) {
          t.a1t[p * t.n1p + j] = a1[j][p];
          if (ISM) t.d1t[p * t.n1p + j] = d1[j][p] * mask[p];
        }
    }
    const vf* c2i = t.c2.data();
    const vf* c2d = t.c2.data() + n2;
    const vf* c2v = t.c2.data() + 2 * n2;
    int k0 = 0;
    for (; k0 + RB <= n2; k0 += RB) outer_rows<RB, ISM, DSM, ISM, VR>(t, k0, c2i, c2d, d2, c2v);
    for (; k0 < n2; ++k0) outer_rows<1, ISM, DSM, ISM, VR>(t, k0, c2i, c2d, d2, c2v);
  }
}

using BlockFn = void (*)(const Inputs&, Thread&, int64_t, int64_t, int64_t);

template <int D_, int N1_, int N2_, class Act, bool VR>
BlockFn pick_passes(bool ism, bool dsm) {
  if (ism && dsm) return process_block<D_, N1_, N2_, Act, true, true, VR, true>;
  if (ism) return process_block<D_, N1_, N2_, Act, true, false, VR, true>;
  if (dsm) return process_block<D_, N1_, N2_, Act, false, true, VR, true>;
  return process_block<D_, N1_, N2_, Act, false, false, VR, true>;
}

template <int D_, int N1_, int N2_, class Act>
BlockFn pick_flags(bool ism, bool dsm, bool vr, bool noisy) {
  if (!noisy) return process_block<D_, N1_, N2_, Act, true, false, false, false>;
  return vr ? pick_passes<D_, N1_, N2_, Act, true>(ism, dsm) : pick_passes<D_, N1_, N2_, Act, false>(ism, dsm);
}

template <class Act>
BlockFn pick_shape(int d, int n1, int n2, bool ism, bool dsm, bool vr, bool noisy) {
  if (d == 2 && n1 == 16 && n2 == 32) return pick_flags<2, 16, 32, Act>(ism, dsm, vr, noisy);
  return pick_flags<0, 0, 0, Act>(ism, dsm, vr, noisy);
}

// Forward on the first tile only: the mean divergence and fit_dsm there, the shift of the moment sums.
void first_tile_shift(Inputs& in, BlockFn fn) {
  Thread t(in.d, in.n1, in.n2);
  in.shift_div = in.shift_fit = in.shift_vr = 0.0;
  fn(in, t, 0, 0, 1);
  const double count = (double)std::min<int64_t>(L, in.N);
  in.shift_div = lane_sum(t.mlane[3]) / count;
  in.shift_fit = lane_sum(t.mlane[5]) / count;
  in.shift_vr = lane_sum(t.mlane[7]) / count;
}

}  // namespace

// Writes metric sums (9, float64), gradients of sum_points for the ISM, DSM-S and variant cotangents
// (3, P) in torch's parameter order (ISM without the C-path), G_C (n2, n1) and the three shifts of the
// centred moment sums. x: (d, N) feature-major; e: (d, M, N) feature-major or null (sigma = 0); r: null
// for the Gaussian kernel, else -grad_z log q(z|x) at each point, laid out like e; rv: null, or a
// denoising variant's -t laid out like e (its reverse pass runs); q: null, or fit_vr's per-point offset
// (M, N); vr: sum fit_vr's moments (with noise); params: w1, b1, w2, b2, w3, b3 of a d -> n1 -> n2 -> d
// MLP, contiguous float32; c = W2 * (W1 W3)^T, (n2, n1). Returns 0.
extern "C" int dsmexp_fused_step(const float* x, const float* e, const float* r, const float* rv, const float* q,
                                 int64_t N, int64_t M, int d, int n1, int n2, double sigma,
                                 const float* const* params, const float* c, int activation, int ism, int dsm,
                                 int vr, int max_threads, double* metrics_out, double* grads_out, double* gc_out,
                                 double* shifts_out) {
  const bool noisy = e != nullptr;
  Inputs in{};
  in.d = d;
  in.N = N;
  in.M = noisy ? M : 1;
  in.n1 = n1;
  in.n2 = n2;
  in.x = x;
  in.e = e;
  in.r = noisy ? r : nullptr;
  in.rv = noisy ? rv : nullptr;
  in.q = noisy ? q : nullptr;
  in.vr = noisy && vr;
  in.sigma = (float)sigma;
  in.inv_sigma = noisy ? (float)(1.0 / sigma) : 0.f;
  in.sigma_d = sigma;
  in.inv_sigma_d = noisy ? 1.0 / sigma : 0.0;
  in.w1 = params[0];
  in.b1 = params[1];
  in.w2 = params[2];
  in.b2 = params[3];
  in.w3 = params[4];
  in.b3 = params[5];
  in.c = c;
  const bool want_ism = ism || !noisy, want_dsm = dsm && noisy;
  const bool want_vr = in.rv != nullptr;  // the variant's reverse pass
  BlockFn fn = activation == 0   ? pick_shape<Tanh>(in.d, in.n1, in.n2, want_ism, want_dsm, want_vr, noisy)
               : activation == 1 ? pick_shape<Sigmoid>(in.d, in.n1, in.n2, want_ism, want_dsm, want_vr, noisy)
                                 : pick_shape<Silu>(in.d, in.n1, in.n2, want_ism, want_dsm, want_vr, noisy);
  first_tile_shift(in, fn);

  const int64_t tiles = (in.N + L - 1) / L;
  const int64_t blocks_per_row = (tiles + BLOCK_TILES - 1) / BLOCK_TILES;
  const int64_t units = in.M * blocks_per_row;
  // Units are handed out in groups of GROUP_UNITS, dynamically (a thread slowed by other processes takes
  // fewer). Each group's float64 sums land in its own slot and the slots are added in group order, so
  // the result does not depend on the thread count or on the schedule.
  const int64_t groups = (units + GROUP_UNITS - 1) / GROUP_UNITS;
  const Layout lay(in.d, in.n1, in.n2);
  const int64_t slot = N_METRICS + COTANGENTS * lay.size + (int64_t)in.n2 * in.n1;
  std::vector<double> slots(groups * slot, 0.0);
  const int threads = (int)std::max<int64_t>(1, std::min<int64_t>(max_threads, groups));
#pragma omp parallel num_threads(threads)
  {
#if defined(__SSE__)
    const unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);  // flush denormals to zero (FTZ | DAZ), as torch.set_flush_denormal
#endif
    Thread t(in.d, in.n1, in.n2);
#pragma omp for schedule(dynamic, 1)
    for (int64_t group = 0; group < groups; ++group) {
      t.clear_sums();
      for (int64_t unit = group * GROUP_UNITS; unit < std::min(units, (group + 1) * GROUP_UNITS); ++unit) {
        const int64_t row = unit / blocks_per_row, block = unit % blocks_per_row;
        const int64_t begin = block * BLOCK_TILES;
        fn(in, t, row, begin, std::min(begin + BLOCK_TILES, tiles));
        t.flush();
      }
      double* out = slots.data() + group * slot;
      std::copy(t.metrics.begin(), t.metrics.end(), out);
      std::copy(t.grads.begin(), t.grads.end(), out + N_METRICS);
      std::copy(t.gc.begin(), t.gc.end(), out + N_METRICS + COTANGENTS * lay.size);
    }
#if defined(__SSE__)
    _mm_setcsr(csr);
#endif
  }
  const int n_grads = COTANGENTS * lay.size, n_gc = in.n2 * in.n1;
  std::fill(metrics_out, metrics_out + N_METRICS, 0.0);
  std::fill(grads_out, grads_out + n_grads, 0.0);
  std::fill(gc_out, gc_out + n_gc, 0.0);
  for (int64_t group = 0; group < groups; ++group) {
    const double* part = slots.data() + group * slot;
    for (int q = 0; q < N_METRICS; ++q) metrics_out[q] += part[q];
    for (int q = 0; q < n_grads; ++q) grads_out[q] += part[N_METRICS + q];
    for (int q = 0; q < n_gc; ++q) gc_out[q] += part[N_METRICS + n_grads + q];
  }
  shifts_out[0] = in.shift_div;
  shifts_out[1] = in.shift_fit;
  shifts_out[2] = in.shift_vr;
  return 0;
}
