// CPU tile rasterizer for 3D Gaussian splatting: binning, forward and backward, written by hand.
//
// One camera per call. Inputs are screen-space Gaussians (means2d, conics, opacities, features,
// integer box radii, depths) from splat/render/_projection.py. Semantics follow gsplat 1.5.3:
// 16x16 tiles, per-tile lists sorted front to back (depth, then index), pixel centres at +0.5,
// alpha = min(0.999, o * exp(-sigma)), skip sigma < 0 or alpha < 1/255, a pixel stops before the
// Gaussian that would bring its transmittance to <= 1e-4.
//
// Layout. The forward first packs each Gaussian into one record (mean, conic, opacity, the numbers of its
// footprint below, then its features), bins the records into tiles (a stable radix sort on depth,
// then a count / scatter pass) and composites the tiles on threads (std::thread with a dynamic tile
// counter; see run_parallel for why not OpenMP). Inside a tile the loop runs Gaussian-outer, pixel-
// inner over 32 "slots" of 8 pixels (half a tile row: one AVX2 register of floats). For each Gaussian
// the footprint test finds, for all 16 rows at once, the x-interval of that row where alpha can reach
// 1/255 (sigma <= ln(255 o) is an ellipse: per row a centre gx + (b/a) dy and a half-width
// sqrt(2 L / a - det dy^2 / a^2)), widened by a safety margin so that it never drops a pixel the exact
// test keeps; only the slots it touches are evaluated. A slot whose pixels have all stopped leaves the
// tile's live mask, and a tile stops when the mask is empty (early termination, exact).
// Backward walks each tile's list back to front over the same slots, recomputing transmittance from the
// stored final T and the per-pixel count of Gaussians that were composited (as gsplat does). Per slot
// it keeps four sums (dL/dsigma, and its dy- and dy^2-weighted sums, dL/dopacity) plus the colour
// gradients; the conic and mean gradients are formed from them once per Gaussian and tile (dx is
// constant down a slot column, dy along a slot row) and written to that list entry's own row. Rows
// are then summed per Gaussian in list order, so tiles go to threads dynamically (robust when the
// cores are shared) and the gradients are still bitwise the same for any thread count.
//
// Vectors are GCC/Clang generic vectors of 8 lanes: one AVX2 register for float (an AVX-512 build uses
// the same 256-bit registers with EVEX encodings; the code needs neither AVX2 nor AVX-512, -march
// decides). float32 for speed and float64 for gradcheck share one template.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <type_traits>
#include <vector>
#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace {

constexpr int kTile = 16;
constexpr int kLanes = 8;                       // pixels per vector: half a tile row
constexpr int kSlots = kTile * kTile / kLanes;  // 32 slots per tile, one bit each in a uint32_t mask
constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kTStop = 1e-4;
constexpr double kAlphaMax = 0.999;
// Record of one Gaussian: gx, gy, a/2, b, c/2, opacity, shear = b/a, reach = 2L/a, flat = det/a^2,
// y_ext = sqrt(reach / flat) (half-height of the footprint), then its D features. L = ln(255 o) enlarged
// by a margin (see make_records).
constexpr int kRec = 10;
constexpr int kAhead = 4;  // records prefetched this many list entries ahead

// Slot h of a tile: bits 0-7 are rows 0-7 (left half), 8-15 rows 0-7 (right half), 16-23 rows 8-15
// (left), 24-31 rows 8-15 (right); this order lets the footprint test build the mask from four 8-lane
// compares.
inline int slot_row(int h) { return (h & 7) | ((h >> 4) << 3); }
inline int slot_half(int h) { return (h >> 3) & 1; }

template <typename scalar_t>
struct Vec;
template <>
struct Vec<float> {
  typedef float V __attribute__((vector_size(kLanes * sizeof(float))));
  typedef int32_t M __attribute__((vector_size(kLanes * sizeof(int32_t))));
};
template <>
struct Vec<double> {
  typedef double V __attribute__((vector_size(kLanes * sizeof(double))));
  typedef int64_t M __attribute__((vector_size(kLanes * sizeof(int64_t))));
};

template <typename V>
using Elem = typename std::remove_reference<decltype(V{}[0])>::type;

template <typename V>
inline V bcast(Elem<V> x) {
  return V{} + x;
}

// Bit j set when lane j of a compare result (-1 / 0 lanes) is set.
inline uint32_t lane_bits(Vec<float>::M m) {
#if defined(__AVX__)
  return static_cast<uint32_t>(_mm256_movemask_ps(reinterpret_cast<__m256>(m)));
#else
  uint32_t b = 0;
  for (int j = 0; j < kLanes; ++j) b |= static_cast<uint32_t>(m[j] != 0) << j;
  return b;
#endif
}
inline uint32_t lane_bits(Vec<double>::M m) {
  uint32_t b = 0;
  for (int j = 0; j < kLanes; ++j) b |= static_cast<uint32_t>(m[j] != 0) << j;
  return b;
}

inline Vec<float>::V vsqrt(Vec<float>::V x) {
#if defined(__AVX__)
  return reinterpret_cast<Vec<float>::V>(_mm256_sqrt_ps(reinterpret_cast<__m256>(x)));
#else
  for (int j = 0; j < kLanes; ++j) x[j] = std::sqrt(x[j]);
  return x;
#endif
}
inline Vec<double>::V vsqrt(Vec<double>::V x) {
  for (int j = 0; j < kLanes; ++j) x[j] = std::sqrt(x[j]);
  return x;
}

// exp(x) lane-wise in float: Cody-Waite range reduction to |r| <= ln2/2 and a degree-6 polynomial
// (Cephes coefficients), about 1 ulp. x is clamped to [-80, 80] so results stay normal floats.
inline Vec<float>::V vexp(Vec<float>::V x) {
  using V = Vec<float>::V;
  using M = Vec<float>::M;
  x = x < -80.0f ? bcast<V>(-80.0f) : x;
  x = x > 80.0f ? bcast<V>(80.0f) : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting rounds to the nearest integer
  V n = (x * 1.44269504088896341f + magic) - magic;
  V r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  V p = bcast<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  V y = p * r * r + r + 1.0f;
  M bits = (__builtin_convertvector(n, M) + 127) << 23;
  return y * reinterpret_cast<V&>(bits);
}
inline Vec<double>::V vexp(Vec<double>::V x) {
  for (int j = 0; j < kLanes; ++j) x[j] = std::exp(x[j]);
  return x;
}

template <typename V>
inline Elem<V> hsum(V v) {
  Elem<V> s = 0;
  for (int j = 0; j < kLanes; ++j) s += v[j];
  return s;
}

inline int ctz(uint32_t x) { return __builtin_ctz(x); }

// Turn on flush-to-zero / denormals-are-zero for the calling thread while in scope (x86 only).
struct DenormalGuard {
#if defined(__SSE__)
  unsigned int saved = _mm_getcsr();
  DenormalGuard() { _mm_setcsr(saved | 0x8040); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#endif
};

// Runs body(thread_index, next) on n_threads threads (the caller is thread 0); bodies that want dynamic
// scheduling pull work indices from the shared atomic counter until they run out. Plain std::thread
// with a blocking join rather than OpenMP: libgomp's default spin-waiting made 2 threads 4-8x slower
// than 1 on a shared, oversubscribed 2-core machine; a join never spins.
template <typename F>
void run_parallel(int n_threads, F body) {
  std::atomic<int> next{0};
  if (n_threads <= 1) {
    body(0, next);
    return;
  }
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back([&body, &next, i] { body(i, next); });
  body(0, next);
  for (auto& th : pool) th.join();
}

inline int thread_count(int64_t work_items) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), work_items)));
}

// Per-tile constants: pixel-centre y of rows 0-7 and 8-15, pixel-centre x of the two halves.
template <typename scalar_t>
struct TileFrame {
  using V = typename Vec<scalar_t>::V;
  int x_base, y_base, rows, cols;
  V row_y[2], col_x[2];
  TileFrame(int t, int tiles_x, int width, int height) {
    x_base = (t % tiles_x) * kTile;
    y_base = (t / tiles_x) * kTile;
    rows = std::min(kTile, height - y_base);
    cols = std::min(kTile, width - x_base);
    for (int j = 0; j < kLanes; ++j) {
      row_y[0][j] = static_cast<scalar_t>(y_base + j) + scalar_t(0.5);
      row_y[1][j] = static_cast<scalar_t>(y_base + kLanes + j) + scalar_t(0.5);
      col_x[0][j] = static_cast<scalar_t>(x_base + j) + scalar_t(0.5);
      col_x[1][j] = static_cast<scalar_t>(x_base + kLanes + j) + scalar_t(0.5);
    }
  }
  bool in_image(int h, int j) const { return slot_row(h) < rows && slot_half(h) * kLanes + j < cols; }
  int64_t pixel(int h, int j, int width) const {
    return static_cast<int64_t>(y_base + slot_row(h)) * width + x_base + slot_half(h) * kLanes + j;
  }
};

// Mask of the tile's slots that contain a pixel centre where this Gaussian's alpha may reach 1/255.
// Conservative: the record's L carries a margin and the half-width another, far above float rounding,
// so a slot is never skipped where the exact per-pixel test would composite.
template <typename scalar_t>
inline uint32_t footprint(const scalar_t* rec, const TileFrame<scalar_t>& f) {
  using V = typename Vec<scalar_t>::V;
  using M = typename Vec<scalar_t>::M;
  const scalar_t gx = rec[0] - static_cast<scalar_t>(f.x_base), gy = rec[1];
  const scalar_t shear = rec[6], reach = rec[7], flat = rec[8], y_ext = rec[9];
  uint32_t bits = 0;
  for (int q = 0; q < 2; ++q) {
    const scalar_t top = f.row_y[q][0], bottom = f.row_y[q][kLanes - 1];
    if (!(gy + y_ext >= top && gy - y_ext <= bottom)) continue;  // no row of this block in reach
    const V dy = gy - f.row_y[q];
    const V w2 = reach - flat * dy * dy;
    const M rows_in = w2 >= scalar_t(0);
    if (!lane_bits(rows_in)) continue;
    const V hw = vsqrt(rows_in ? w2 : V{}) * scalar_t(1.001) + scalar_t(0.02);
    const V xc = gx + shear * dy;  // tile-relative x of the row's centre
    const V lo = xc - hw, hi = xc + hw;
    const M left = rows_in & (lo <= scalar_t(kLanes - 0.5)) & (hi >= scalar_t(0.5));
    const M right = rows_in & (lo <= scalar_t(kTile - 0.5)) & (hi >= scalar_t(kLanes + 0.5));
    bits |= (lane_bits(left) | (lane_bits(right) << 8)) << (16 * q);
  }
  return bits;
}

// One record per Gaussian ([N, kRec + D], see kRec). The footprint numbers are computed in double.
// Never visible (opacity < 1/255 or NaN): reach and y_ext -1 (empty footprint). Degenerate conic
// (det <= 0 or a <= 0, or overflow): reach and y_ext +inf, flat 0 (every slot of the tile is evaluated).
template <typename scalar_t>
void make_records(const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors, const scalar_t* opac,
                  int64_t n, int64_t d, scalar_t* rec) {
  const int64_t stride = kRec + d, chunk = 2048;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  run_parallel(thread_count(n_chunks), [&](int, std::atomic<int>& next) {
    for (int64_t c = next++; c < n_chunks; c = next++) {
      for (int64_t g = c * chunk; g < std::min(n, (c + 1) * chunk); ++g) {
        scalar_t* r = rec + g * stride;
        const double ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2], op = opac[g];
        const double det = ca * cc - cb * cb;
        double shear = 0, reach = std::numeric_limits<double>::infinity(), flat = 0, y_ext = reach;
        if (!(op >= kAlphaMin)) {
          reach = -1;
          y_ext = -1;
        } else if (det > 0 && ca > 0) {
          // 2e-3 relative + 2e-3 absolute on L: rounding of sigma in float is ~1e-6 of its terms.
          const double level = std::log(op / kAlphaMin) * (1 + 2e-3) + 2e-3;
          const double s = cb / ca, re = 2 * level / ca, fl = det / (ca * ca);
          if (std::isfinite(s) && std::isfinite(re) && std::isfinite(fl) && re < 1e30 && fl < 1e30) {
            shear = s;
            reach = re;
            flat = fl;
            y_ext = std::sqrt(re / fl) * (1 + 1e-4) + 1e-3;  // rows with reach - flat dy^2 >= 0, widened
          }
        }
        r[0] = means2d[2 * g];
        r[1] = means2d[2 * g + 1];
        r[2] = scalar_t(0.5) * conics[3 * g];
        r[3] = conics[3 * g + 1];
        r[4] = scalar_t(0.5) * conics[3 * g + 2];
        r[5] = opac[g];
        r[6] = static_cast<scalar_t>(shear);
        r[7] = static_cast<scalar_t>(reach);
        r[8] = static_cast<scalar_t>(flat);
        r[9] = static_cast<scalar_t>(y_ext);
        for (int64_t k = 0; k < d; ++k) r[kRec + k] = colors[g * d + k];
      }
    }
  });
}

// float -> uint32 key with the same order (negative values flipped); -0 and +0 are one key.
inline uint32_t depth_key(float z) {
  z = z + 0.0f;
  uint32_t u;
  std::memcpy(&u, &z, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Tiles touched by each Gaussian's box, lists sorted by (depth, index). Box arithmetic in float32,
// as the torch twin and gsplat do. Writes offsets [n_tiles + 1] and returns the ids [n_isects].
template <typename scalar_t>
torch::Tensor bin_gaussians(const scalar_t* means2d, const int32_t* radii, const scalar_t* depths, int64_t n,
                            int tiles_x, int tiles_y, int32_t* offsets) {
  const int n_tiles = tiles_x * tiles_y;
  std::vector<int32_t> box(4 * n);  // x0, x1, y0, y1 per Gaussian (set for the visible ones)
  std::vector<uint32_t> key;
  std::vector<int32_t> idx;
  key.reserve(n);
  idx.reserve(n);
  std::vector<int64_t> count(n_tiles + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    if (radii[2 * i] <= 0 || radii[2 * i + 1] <= 0) continue;
    const float mx = static_cast<float>(means2d[2 * i]) / kTile;
    const float my = static_cast<float>(means2d[2 * i + 1]) / kTile;
    const float rx = static_cast<float>(radii[2 * i]) / kTile;
    const float ry = static_cast<float>(radii[2 * i + 1]) / kTile;
    auto clampi = [](float v, int hi) { return v <= 0.f ? 0 : (v >= hi ? hi : static_cast<int>(v)); };
    const int x0 = clampi(std::floor(mx - rx), tiles_x), x1 = clampi(std::ceil(mx + rx), tiles_x);
    const int y0 = clampi(std::floor(my - ry), tiles_y), y1 = clampi(std::ceil(my + ry), tiles_y);
    if (x1 <= x0 || y1 <= y0) continue;
    int32_t* b = &box[4 * i];
    b[0] = x0; b[1] = x1; b[2] = y0; b[3] = y1;
    key.push_back(depth_key(static_cast<float>(depths[i])));
    idx.push_back(static_cast<int32_t>(i));
    for (int ty = y0; ty < y1; ++ty)
      for (int tx = x0; tx < x1; ++tx) ++count[ty * tiles_x + tx + 1];
  }
  // Stable LSD radix sort of (key, index) on 11-bit digits: ties keep index order.
  const size_t m = key.size();
  {
    std::vector<uint32_t> key2(m);
    std::vector<int32_t> idx2(m);
    for (int shift = 0; shift < 32; shift += 11) {
      uint32_t hist[2049] = {0};
      for (size_t j = 0; j < m; ++j) ++hist[((key[j] >> shift) & 2047u) + 1];
      bool one_bucket = false;
      for (int b = 0; b < 2048; ++b) {
        if (hist[b + 1] == m) one_bucket = true;
        hist[b + 1] += hist[b];
      }
      if (one_bucket) continue;  // this digit is the same everywhere: the pass would only copy
      for (size_t j = 0; j < m; ++j) {
        const uint32_t pos = hist[(key[j] >> shift) & 2047u]++;
        key2[pos] = key[j];
        idx2[pos] = idx[j];
      }
      key.swap(key2);
      idx.swap(idx2);
    }
  }
  for (int t = 0; t < n_tiles; ++t) count[t + 1] += count[t];
  TORCH_CHECK(count[n_tiles] < std::numeric_limits<int32_t>::max(), "too many tile-Gaussian pairs (> 2^31)");
  for (int t = 0; t <= n_tiles; ++t) offsets[t] = static_cast<int32_t>(count[t]);
  auto ids = torch::empty({count[n_tiles]}, torch::kInt);
  int32_t* out = ids.data_ptr<int32_t>();
  for (size_t j = 0; j < m; ++j) {
    const int32_t g = idx[j];
    const int32_t* b = &box[4 * static_cast<size_t>(g)];
    for (int ty = b[2]; ty < b[3]; ++ty)
      for (int tx = b[0]; tx < b[1]; ++tx) out[count[ty * tiles_x + tx]++] = g;
  }
  return ids;
}

template <typename scalar_t>
void forward_impl(const scalar_t* recs, int64_t d, const scalar_t* background, const int32_t* offsets,
                  const int32_t* ids, int n_tiles, int width, int height, int tiles_x, scalar_t* img,
                  scalar_t* alpha_out, scalar_t* final_t, int32_t* n_contrib) {
  using V = typename Vec<scalar_t>::V;
  using M = typename Vec<scalar_t>::M;
  using I = Elem<M>;
  const int64_t stride = kRec + d;
  const scalar_t a_min = static_cast<scalar_t>(kAlphaMin), a_max = static_cast<scalar_t>(kAlphaMax);
  const scalar_t t_stop = static_cast<scalar_t>(kTStop);
  run_parallel(thread_count(n_tiles), [&](int, std::atomic<int>& next) {
    DenormalGuard ftz;
    std::vector<V> trans(kSlots), acc(d * kSlots);
    std::vector<M> last(kSlots);
    for (int t = next++; t < n_tiles; t = next++) {
      const TileFrame<scalar_t> f(t, tiles_x, width, height);
      const int lo = offsets[t], hi = offsets[t + 1];
      // Lanes outside the image start "done" (negative transmittance); done lanes keep -T.
      uint32_t live = 0;
      for (int h = 0; h < kSlots; ++h) {
        V init;
        for (int j = 0; j < kLanes; ++j) init[j] = f.in_image(h, j) ? scalar_t(1) : scalar_t(-1);
        trans[h] = init;
        last[h] = M{};
        if (f.in_image(h, 0)) live |= 1u << h;
      }
      std::fill(acc.begin(), acc.end(), V{});
      for (int k = lo; k < hi && live; ++k) {
        // Records are read in depth order, scattered in memory: fetch a few ahead of their use.
        if (k + kAhead < hi) __builtin_prefetch(recs + static_cast<int64_t>(ids[k + kAhead]) * stride);
        const scalar_t* rec = recs + static_cast<int64_t>(ids[k]) * stride;
        uint32_t bits = footprint(rec, f) & live;
        if (!bits) continue;
        const scalar_t gx = rec[0], gy = rec[1], ha = rec[2], cb = rec[3], hc = rec[4], op = rec[5];
        const scalar_t* col = rec + kRec;
        const V dxs[2] = {gx - f.col_x[0], gx - f.col_x[1]};
        const V qx[2] = {ha * dxs[0] * dxs[0], ha * dxs[1] * dxs[1]};
        const I label = k - lo + 1;
        do {
          const int h = ctz(bits);
          bits &= bits - 1;
          const int half = slot_half(h);
          const scalar_t dy = gy - (static_cast<scalar_t>(f.y_base + slot_row(h)) + scalar_t(0.5));
          const V sigma = qx[half] + (cb * dy) * dxs[half] + hc * dy * dy;
          V alpha = op * vexp(-sigma);
          alpha = alpha < a_max ? alpha : bcast<V>(a_max);
          const V tj = trans[h];
          const M ok = (sigma >= scalar_t(0)) & (alpha >= a_min) & (tj > scalar_t(0));
          alpha = ok ? alpha : V{};
          const V next_t = tj - tj * alpha;
          const M stop = ok & (next_t <= t_stop);
          const M use = ok & ~stop;
          const V w = use ? alpha * tj : V{};
          const V tn = stop ? -tj : (use ? next_t : tj);
          trans[h] = tn;
          last[h] = use ? label + M{} : last[h];
          for (int64_t c = 0; c < d; ++c) acc[c * kSlots + h] += w * col[c];
          if (lane_bits(stop) && !lane_bits(tn > scalar_t(0))) live &= ~(1u << h);
        } while (bits);
      }
      for (int h = 0; h < kSlots; ++h) {
        for (int j = 0; j < kLanes; ++j) {
          if (!f.in_image(h, j)) break;
          const int64_t pix = f.pixel(h, j, width);
          const scalar_t tf = std::abs(trans[h][j]);
          final_t[pix] = tf;
          alpha_out[pix] = scalar_t(1) - tf;
          n_contrib[pix] = static_cast<int32_t>(last[h][j]);
          for (int64_t c = 0; c < d; ++c) {
            const scalar_t v = acc[c * kSlots + h][j];
            img[pix * d + c] = background ? v + tf * background[c] : v;
          }
        }
      }
    }
  });
}

// Gradient row of each tile-Gaussian pair (list entry k): [v_mean_x, v_mean_y, v_conic_a, v_conic_b,
// v_conic_c, v_opacity, v_color(d)], zero where the Gaussian composited no pixel of the tile. With a
// background (img = C + T_final bg, T_final = 1 - alpha) its term folds into the alpha gradient, and
// tile_bg [n_tiles, d] gets each tile's sum of T_final * v_img. Every output belongs to one tile, so
// tiles go to threads dynamically and the sums (rasterize_backward) do not depend on who did what.
template <typename scalar_t>
void backward_impl(const scalar_t* recs, int64_t d, const scalar_t* background, const int32_t* offsets,
                   const int32_t* ids, int n_tiles, const scalar_t* final_t, const int32_t* n_contrib,
                   const scalar_t* v_img, const scalar_t* v_alpha, int width, int height, int tiles_x,
                   scalar_t* pair_grads /* [n_isects, 6 + d] */, double* tile_bg /* [n_tiles, d] */) {
  using V = typename Vec<scalar_t>::V;
  using M = typename Vec<scalar_t>::M;
  using I = Elem<M>;
  const int64_t stride = kRec + d, gstride = 6 + d;
  const scalar_t a_min = static_cast<scalar_t>(kAlphaMin), a_max = static_cast<scalar_t>(kAlphaMax);
  run_parallel(thread_count(n_tiles), [&](int, std::atomic<int>& next) {
    DenormalGuard ftz;
    std::vector<V> t_cur(kSlots), va_fin(kSlots), s(d * kSlots), v_c(d * kSlots);
    std::vector<M> cnt(kSlots);
    std::vector<I> cnt_max(kSlots);
    // Per half (left, right): sum of dL/dsigma, of dy * dL/dsigma, of dy^2 * dL/dsigma, dL/dopacity,
    // then the D colour gradients; summed over the slots a Gaussian touches in one tile.
    const int64_t n_acc = 4 + d;
    std::vector<V> sums(2 * n_acc);
    for (int t = next++; t < n_tiles; t = next++) {
      const int lo = offsets[t], hi = offsets[t + 1];
      const TileFrame<scalar_t> f(t, tiles_x, width, height);
      if (background) {
        double* bg_sum = tile_bg + static_cast<int64_t>(t) * d;
        std::fill(bg_sum, bg_sum + d, 0.0);
        for (int r = 0; r < f.rows; ++r) {
          for (int x = 0; x < f.cols; ++x) {
            const int64_t pix = static_cast<int64_t>(f.y_base + r) * width + f.x_base + x;
            for (int64_t c = 0; c < d; ++c) bg_sum[c] += static_cast<double>(final_t[pix]) * v_img[pix * d + c];
          }
        }
      }
      if (hi == lo) continue;
      std::fill(pair_grads + lo * gstride, pair_grads + hi * gstride, scalar_t(0));
      I k_max = 0;
      for (int h = 0; h < kSlots; ++h) {
        V tf{}, va{};
        M cn{};
        for (int j = 0; j < kLanes; ++j) {
          const bool in = f.in_image(h, j);
          const int64_t pix = in ? f.pixel(h, j, width) : 0;
          tf[j] = in ? final_t[pix] : scalar_t(0);
          va[j] = in ? v_alpha[pix] : scalar_t(0);
          if (in && background)
            for (int64_t c = 0; c < d; ++c) va[j] -= v_img[pix * d + c] * background[c];
          cn[j] = in ? n_contrib[pix] : 0;
          for (int64_t c = 0; c < d; ++c) v_c[c * kSlots + h][j] = in ? v_img[pix * d + c] : scalar_t(0);
        }
        I cm = 0;
        for (int j = 0; j < kLanes; ++j) cm = std::max(cm, cn[j]);
        cnt_max[h] = cm;
        k_max = std::max(k_max, cm);
        t_cur[h] = tf;
        va_fin[h] = va * tf;  // d alpha_out / d alpha_i = T_final / (1 - alpha_i)
        cnt[h] = cn;
        for (int64_t c = 0; c < d; ++c) s[c * kSlots + h] = V{};
      }
      for (int k = lo + static_cast<int>(k_max) - 1; k >= lo; --k) {
        const int32_t g = ids[k];
        if (k - kAhead >= lo) __builtin_prefetch(recs + static_cast<int64_t>(ids[k - kAhead]) * stride);
        const scalar_t* rec = recs + static_cast<int64_t>(g) * stride;
        uint32_t bits = footprint(rec, f);
        if (!bits) continue;
        const I label = k - lo;  // a pixel composited this Gaussian iff label < its count
        const scalar_t gx = rec[0], gy = rec[1], ha = rec[2], cb = rec[3], hc = rec[4], op = rec[5];
        const scalar_t* col = rec + kRec;
        const V dxs[2] = {gx - f.col_x[0], gx - f.col_x[1]};
        const V qx[2] = {ha * dxs[0] * dxs[0], ha * dxs[1] * dxs[1]};
        bool any = false;
        std::fill(sums.begin(), sums.end(), V{});
        do {
          const int h = ctz(bits);
          bits &= bits - 1;
          if (label >= cnt_max[h]) continue;
          const int half = slot_half(h);
          const scalar_t dy = gy - (static_cast<scalar_t>(f.y_base + slot_row(h)) + scalar_t(0.5));
          const V sigma = qx[half] + (cb * dy) * dxs[half] + hc * dy * dy;
          const V vis = vexp(-sigma);
          const V o_vis = op * vis;
          V alpha = o_vis < a_max ? o_vis : bcast<V>(a_max);
          const M m = (sigma >= scalar_t(0)) & (alpha >= a_min) & (label < cnt[h]);
          any = true;
          V* acc = &sums[half * n_acc];
          alpha = m ? alpha : V{};
          const V ra = scalar_t(1) / (scalar_t(1) - alpha);
          const V ti = t_cur[h] * ra;  // transmittance before this Gaussian
          const V fac = alpha * ti;    // its blending weight (0 off the mask)
          V v_al = va_fin[h] * ra;
          for (int64_t c = 0; c < d; ++c) {
            const scalar_t cv = col[c];
            const V vr = v_c[c * kSlots + h];
            V& sr = s[c * kSlots + h];  // sum of weighted colours behind this Gaussian
            v_al += vr * (cv * ti - sr * ra);
            sr += cv * fac;
            acc[4 + c] += fac * vr;
          }
          const M live = m & (o_vis <= a_max);  // alpha not clamped at 0.999
          const V v_sig = live ? -o_vis * v_al : V{};
          acc[0] += v_sig;
          acc[1] += dy * v_sig;
          acc[2] += (dy * dy) * v_sig;
          acc[3] += live ? vis * v_al : V{};
          t_cur[h] = m ? ti : t_cur[h];
        } while (bits);
        if (!any) continue;
        // dsigma/da = dx^2/2, /db = dx dy, /dc = dy^2/2, /dgx = a dx + b dy, /dgy = b dx + c dy.
        const V* l = &sums[0];
        const V* r = &sums[n_acc];
        const scalar_t x0 = hsum(dxs[0] * l[0] + dxs[1] * r[0]);
        const scalar_t xx0 = hsum(dxs[0] * dxs[0] * l[0] + dxs[1] * dxs[1] * r[0]);
        const scalar_t y1 = hsum(l[1] + r[1]);
        const scalar_t xy1 = hsum(dxs[0] * l[1] + dxs[1] * r[1]);
        const scalar_t ca = 2 * ha, cc = 2 * hc;
        scalar_t* gr = pair_grads + static_cast<int64_t>(k) * gstride;
        gr[0] = ca * x0 + cb * y1;
        gr[1] = cb * x0 + cc * y1;
        gr[2] = scalar_t(0.5) * xx0;
        gr[3] = xy1;
        gr[4] = scalar_t(0.5) * hsum(l[2] + r[2]);
        gr[5] = hsum(l[3] + r[3]);
        for (int64_t c = 0; c < d; ++c) gr[6 + c] = hsum(l[4 + c] + r[4 + c]);
      }
    }
  });
}

void check_input(const torch::Tensor& x, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(x.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(x.scalar_type() == dtype, name, " has dtype ", x.scalar_type(), ", expected ", dtype);
}

}  // namespace

// Returns image [H, W, D] (+ T_final * background when one is given), alpha = 1 - T_final [H, W, 1],
// final transmittance [H, W], per-pixel count of composited list entries [H, W] int32, tile offsets
// [n_tiles + 1] int32, tile lists [n_isects] int32 and the Gaussian records [N, 10 + D] the backward reads.
std::vector<torch::Tensor> rasterize_forward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors,
                                             torch::Tensor opacities, torch::Tensor radii, torch::Tensor depths,
                                             std::optional<torch::Tensor> background, int64_t width,
                                             int64_t height) {
  const auto dtype = means2d.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  check_input(means2d, "means2d", dtype);
  check_input(conics, "conics", dtype);
  check_input(colors, "colors", dtype);
  check_input(opacities, "opacities", dtype);
  check_input(depths, "depths", dtype);
  check_input(radii, "radii", at::kInt);
  const int64_t n = means2d.size(0);
  TORCH_CHECK(means2d.dim() == 2 && means2d.size(1) == 2, "means2d must be [N, 2]");
  TORCH_CHECK(conics.sizes() == torch::IntArrayRef({n, 3}), "conics must be [N, 3]");
  TORCH_CHECK(colors.dim() == 2 && colors.size(0) == n && colors.size(1) >= 1, "colors must be [N, D]");
  TORCH_CHECK(opacities.numel() == n && depths.numel() == n && radii.numel() == 2 * n, "bad sizes");
  TORCH_CHECK(width > 0 && height > 0 && width < (1 << 20) && height < (1 << 20), "bad image size");
  TORCH_CHECK(n < std::numeric_limits<int32_t>::max(), "too many Gaussians");
  const int64_t d = colors.size(1);
  if (background) {
    check_input(*background, "background", dtype);
    TORCH_CHECK(background->numel() == d, "background must be [D]");
  }
  const int tiles_x = static_cast<int>((width + kTile - 1) / kTile);
  const int tiles_y = static_cast<int>((height + kTile - 1) / kTile);
  const int n_tiles = tiles_x * tiles_y;
  auto opts = means2d.options();
  // Every pixel is written by its tile. torch::empty, not zeros: a torch fill would run on torch's
  // OpenMP pool, whose spin-waiting workers then compete with our threads.
  auto img = torch::empty({height, width, d}, opts);
  auto alpha = torch::empty({height, width, 1}, opts);
  auto final_t = torch::empty({height, width}, opts);
  auto n_contrib = torch::empty({height, width}, opts.dtype(at::kInt));
  auto offsets = torch::empty({n_tiles + 1}, opts.dtype(at::kInt));
  auto records = torch::empty({n, kRec + d}, opts);
  torch::Tensor ids;
  AT_DISPATCH_FLOATING_TYPES(dtype, "rasterize_forward", [&] {
    make_records<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                           opacities.data_ptr<scalar_t>(), n, d, records.data_ptr<scalar_t>());
    ids = bin_gaussians<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                  depths.data_ptr<scalar_t>(), n, tiles_x, tiles_y, offsets.data_ptr<int32_t>());
    forward_impl<scalar_t>(records.data_ptr<scalar_t>(), d, background ? background->data_ptr<scalar_t>() : nullptr,
                           offsets.data_ptr<int32_t>(), ids.data_ptr<int32_t>(), n_tiles, static_cast<int>(width),
                           static_cast<int>(height), tiles_x, img.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(),
                           final_t.data_ptr<scalar_t>(), n_contrib.data_ptr<int32_t>());
  });
  return {img, alpha, final_t, n_contrib, offsets, ids, records};
}

// Gradients w.r.t. means2d [N, 2], conics [N, 3], colors [N, D], opacities [N] and the background [D]
// (empty without one) given the forward's records, tile lists, final T and counts, and the gradients of
// the image [H, W, D] and of alpha [H, W, 1].
std::vector<torch::Tensor> rasterize_backward(torch::Tensor records, std::optional<torch::Tensor> background,
                                              torch::Tensor offsets, torch::Tensor ids, torch::Tensor final_t,
                                              torch::Tensor n_contrib, torch::Tensor v_img, torch::Tensor v_alpha,
                                              int64_t width, int64_t height) {
  const auto dtype = records.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  check_input(records, "records", dtype);
  check_input(final_t, "final_t", dtype);
  check_input(v_img, "v_img", dtype);
  check_input(v_alpha, "v_alpha", dtype);
  check_input(offsets, "offsets", at::kInt);
  check_input(ids, "ids", at::kInt);
  check_input(n_contrib, "n_contrib", at::kInt);
  TORCH_CHECK(records.dim() == 2 && records.size(1) > kRec, "records must be [N, 9 + D]");
  const int64_t n = records.size(0), d = records.size(1) - kRec;
  if (background) {
    check_input(*background, "background", dtype);
    TORCH_CHECK(background->numel() == d, "background must be [D]");
  }
  TORCH_CHECK(v_img.sizes() == torch::IntArrayRef({height, width, d}), "v_img must be [H, W, D]");
  TORCH_CHECK(v_alpha.numel() == height * width && final_t.numel() == height * width, "bad sizes");
  TORCH_CHECK(n_contrib.numel() == height * width, "bad sizes");
  const int tiles_x = static_cast<int>((width + kTile - 1) / kTile);
  const int tiles_y = static_cast<int>((height + kTile - 1) / kTile);
  const int n_tiles = static_cast<int>(offsets.numel()) - 1;
  TORCH_CHECK(n_tiles == tiles_x * tiles_y, "offsets do not match the image size");
  const int64_t n_isects = ids.numel();
  TORCH_CHECK(offsets.data_ptr<int32_t>()[n_tiles] == n_isects, "offsets do not match ids");
  auto opts = records.options();
  auto pair_grads = torch::empty({n_isects, 6 + d}, opts);
  auto v_means2d = torch::empty({n, 2}, opts), v_conics = torch::empty({n, 3}, opts);
  auto v_colors = torch::empty({n, d}, opts), v_opac = torch::empty({n}, opts);
  auto v_bg = torch::empty({background ? d : 0}, opts);
  std::vector<double> tile_bg(background ? static_cast<size_t>(n_tiles * d) : 0, 0.0);
  AT_DISPATCH_FLOATING_TYPES(dtype, "rasterize_backward", [&] {
    const int32_t* id = ids.data_ptr<int32_t>();
    backward_impl<scalar_t>(records.data_ptr<scalar_t>(), d, background ? background->data_ptr<scalar_t>() : nullptr,
                            offsets.data_ptr<int32_t>(), id, n_tiles, final_t.data_ptr<scalar_t>(),
                            n_contrib.data_ptr<int32_t>(), v_img.data_ptr<scalar_t>(), v_alpha.data_ptr<scalar_t>(),
                            static_cast<int>(width), static_cast<int>(height), tiles_x,
                            pair_grads.data_ptr<scalar_t>(), tile_bg.data());
    if (background) {
      scalar_t* vb = v_bg.data_ptr<scalar_t>();
      for (int64_t c = 0; c < d; ++c) {
        double sum = 0;
        for (int t = 0; t < n_tiles; ++t) sum += tile_bg[t * d + c];
        vb[c] = static_cast<scalar_t>(sum);
      }
    }
    // Each Gaussian's list entries in increasing order (a counting sort of the ids), then its gradient
    // is the sum of their rows in that order: bitwise the same for any thread count.
    std::vector<int32_t> first(n + 1, 0), entries(n_isects);
    for (int64_t k = 0; k < n_isects; ++k) ++first[id[k] + 1];
    for (int64_t g = 0; g < n; ++g) first[g + 1] += first[g];
    {
      std::vector<int32_t> cursor(first.begin(), first.end() - 1);
      for (int64_t k = 0; k < n_isects; ++k) entries[cursor[id[k]]++] = static_cast<int32_t>(k);
    }
    const scalar_t* pg = pair_grads.data_ptr<scalar_t>();
    scalar_t *vm = v_means2d.data_ptr<scalar_t>(), *vcn = v_conics.data_ptr<scalar_t>();
    scalar_t *vcl = v_colors.data_ptr<scalar_t>(), *vo = v_opac.data_ptr<scalar_t>();
    const int64_t stride = 6 + d, chunk = 4096;
    const int n_chunks = static_cast<int>((n + chunk - 1) / chunk);
    run_parallel(thread_count(n_chunks), [&](int, std::atomic<int>& next) {
      std::vector<scalar_t> row(stride);
      for (int c = next++; c < n_chunks; c = next++) {
        for (int64_t g = c * chunk; g < std::min(n, (c + 1) * chunk); ++g) {
          std::fill(row.begin(), row.end(), scalar_t(0));
          for (int32_t e = first[g]; e < first[g + 1]; ++e) {
            const scalar_t* src = pg + static_cast<int64_t>(entries[e]) * stride;
            for (int64_t k = 0; k < stride; ++k) row[k] += src[k];
          }
          vm[2 * g] = row[0]; vm[2 * g + 1] = row[1];
          vcn[3 * g] = row[2]; vcn[3 * g + 1] = row[3]; vcn[3 * g + 2] = row[4];
          vo[g] = row[5];
          for (int64_t k = 0; k < d; ++k) vcl[g * d + k] = row[6 + k];
        }
      }
    });
  });
  return {v_means2d, v_conics, v_colors, v_opac, v_bg};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &rasterize_forward, "tile rasterizer forward (one camera)");
  m.def("backward", &rasterize_backward, "tile rasterizer backward (one camera)");
}
