// CPU tile rasterizer for 3D Gaussian splatting: binning, forward and backward, written by hand.
//
// One camera per call. Inputs are screen-space Gaussians (means2d, conics, opacities, features,
// integer box radii, depths) from splat/render/_projection.py. Semantics follow gsplat 1.5.3:
// 16x16 tiles, per-tile lists sorted front to back (depth, then index), pixel centres at +0.5,
// alpha = min(0.999, o * exp(-sigma)), skip sigma < 0 or alpha < 1/255, a pixel stops before the
// Gaussian that would bring its transmittance to <= 1e-4.
//
// Layout: threads over tiles (std::thread with a dynamic tile counter; see run_parallel for why not
// OpenMP). Inside a tile the loop runs Gaussian-outer, pixel-inner: each Gaussian updates the 16
// pixels of a tile row at once (one vector of pixel state per row), and only rows that its
// alpha >= 1/255 ellipse can reach are visited (an exact bound, so results do not change).
// Backward walks each tile's list back to front, recomputing transmittance from the stored final T and
// the per-pixel count of Gaussians that were composited (as gsplat does); per-Gaussian gradients go to
// per-thread buffers that are summed at the end in thread order (no atomics). The backward deals tiles
// to threads round-robin (thread i takes tiles i, i + T, ...) rather than from the dynamic counter, so
// each buffer adds its tiles in a fixed order: gradients are bitwise reproducible for a given thread
// count (the forward has no cross-tile sums and keeps dynamic scheduling).
//
// float32 for speed and float64 for gradcheck share one template.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <atomic>
#include <thread>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <type_traits>
#include <vector>
#if defined(__SSE__)
#include <immintrin.h>
#endif

namespace {

constexpr int kTile = 16;
constexpr int kTilePix = kTile * kTile;
constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kTStop = 1e-4;
constexpr double kAlphaMax = 0.999;

// One tile row (16 pixels) as a GCC/Clang generic vector: compiles to one AVX-512 register, two AVX2
// registers or four SSE registers, whatever -march allows. Lane masks are integer vectors (-1 / 0).
template <typename scalar_t>
struct Vec;
template <>
struct Vec<float> {
  typedef float V __attribute__((vector_size(kTile * sizeof(float))));
  typedef int32_t M __attribute__((vector_size(kTile * sizeof(int32_t))));
};
template <>
struct Vec<double> {
  typedef double V __attribute__((vector_size(kTile * sizeof(double))));
  typedef int64_t M __attribute__((vector_size(kTile * sizeof(int64_t))));
};

template <typename V>
inline V splat(typename std::remove_reference<decltype(V{}[0])>::type x) {
  return V{} + x;
}

// exp(x) lane-wise in float: Cody-Waite range reduction to |r| <= ln2/2 and a degree-6 polynomial
// (Cephes coefficients), about 1 ulp. x is clamped to [-80, 80] so results stay normal floats.
inline Vec<float>::V vexp(Vec<float>::V x) {
  using V = Vec<float>::V;
  using M = Vec<float>::M;
  x = x < -80.0f ? splat<V>(-80.0f) : x;
  x = x > 80.0f ? splat<V>(80.0f) : x;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting rounds to the nearest integer
  V n = (x * 1.44269504088896341f + magic) - magic;
  V r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  V p = splat<V>(1.9875691500e-4f);
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
  for (int j = 0; j < kTile; ++j) x[j] = std::exp(x[j]);
  return x;
}

template <typename V>
inline typename std::remove_reference<decltype(V{}[0])>::type hsum(V v) {
  typename std::remove_reference<decltype(V{}[0])>::type s = 0;
  for (int j = 0; j < kTile; ++j) s += v[j];
  return s;
}

template <typename V>
inline V lane_centres(int x_base) {  // pixel centres x_base + j + 0.5
  V v;
  for (int j = 0; j < kTile; ++j) v[j] = static_cast<decltype(v[0] + 0)>(x_base + j) + 0.5;
  return v;
}

// Turn on flush-to-zero / denormals-are-zero for the calling thread while in scope (x86 only).
struct DenormalGuard {
#if defined(__SSE__)
  unsigned int saved = _mm_getcsr();
  DenormalGuard() { _mm_setcsr(saved | 0x8040); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#endif
};

// Runs body(thread_index, next_tile) on n_threads threads (the caller is thread 0); body pulls tile
// indices from the shared atomic counter until they run out (dynamic scheduling). Plain std::thread
// with a blocking join rather than OpenMP: libgomp's default spin-waiting made 2 threads 4-8x slower
// than 1 on a shared, oversubscribed 2-core machine; a join never spins.
template <typename F>
void run_parallel(int n_threads, F body) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back([&body, &next, i] { body(i, next); });
  body(0, next);
  for (auto& th : pool) th.join();
}

inline int thread_count(int n_tiles) { return std::max(1, std::min(at::get_num_threads(), n_tiles)); }

struct Bins {
  std::vector<int32_t> offsets;  // [n_tiles + 1]
  std::vector<int32_t> ids;      // [n_isects] Gaussian index, per tile front to back
  std::vector<float> row_ext;    // [N] see row_extents
};

// Tiles touched by each Gaussian's box, lists sorted by (depth, index). Box arithmetic in float32,
// as the torch twin and gsplat do.
template <typename scalar_t>
Bins bin_gaussians(const scalar_t* means2d, const int32_t* radii, const scalar_t* depths, int64_t n,
                   int tiles_x, int tiles_y) {
  std::vector<std::pair<float, int32_t>> order;
  order.reserve(n);
  std::vector<int32_t> box(4 * n, 0);
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
    box[4 * i] = x0; box[4 * i + 1] = x1; box[4 * i + 2] = y0; box[4 * i + 3] = y1;
    order.emplace_back(static_cast<float>(depths[i]), static_cast<int32_t>(i));
  }
  std::sort(order.begin(), order.end());  // keys are unique (index breaks ties): a stable depth sort
  const int n_tiles = tiles_x * tiles_y;
  Bins bins;
  bins.offsets.assign(n_tiles + 1, 0);
  for (const auto& e : order) {
    const int32_t* b = &box[4 * e.second];
    for (int ty = b[2]; ty < b[3]; ++ty)
      for (int tx = b[0]; tx < b[1]; ++tx) ++bins.offsets[ty * tiles_x + tx + 1];
  }
  int64_t total = 0;
  for (int t = 0; t < n_tiles; ++t) {
    total += bins.offsets[t + 1];
    TORCH_CHECK(total < std::numeric_limits<int32_t>::max(), "too many tile-Gaussian pairs (> 2^31)");
    bins.offsets[t + 1] = static_cast<int32_t>(total);
  }
  bins.ids.resize(bins.offsets[n_tiles]);
  std::vector<int32_t> cursor(bins.offsets.begin(), bins.offsets.end() - 1);
  for (const auto& e : order) {
    const int32_t* b = &box[4 * e.second];
    for (int ty = b[2]; ty < b[3]; ++ty)
      for (int tx = b[0]; tx < b[1]; ++tx) bins.ids[cursor[ty * tiles_x + tx]++] = e.second;
  }
  return bins;
}

// Half-height (pixels) of the region where a Gaussian's alpha can reach 1/255: sigma <= ln(255 o),
// so |dy| <= sqrt(2 ln(255 o) Sigma_yy) with Sigma = conic^-1. Slightly enlarged; < 0: Gaussian never
// visible; +inf: no bound (degenerate conic).
template <typename scalar_t>
std::vector<float> row_extents(const scalar_t* conics, const scalar_t* opac, int64_t n) {
  std::vector<float> ext(n);
  for (int64_t g = 0; g < n; ++g) {
    const double ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2], op = opac[g];
    const double det = ca * cc - cb * cb;
    if (!(op >= kAlphaMin)) {
      ext[g] = -1.0f;
    } else if (!(det > 0) || !(ca > 0)) {
      ext[g] = std::numeric_limits<float>::infinity();
    } else {
      const double ey = std::sqrt(2.0 * std::log(op / kAlphaMin) * ca / det);
      ext[g] = std::isfinite(ey) ? static_cast<float>(ey * (1 + 1e-4) + 0.01) : std::numeric_limits<float>::infinity();
    }
  }
  return ext;
}

// Rows [lo, hi] of the tile at y_base (rows valid rows) within gy +- ext of the row centres.
inline void row_range(double gy, float ext, int y_base, int rows, int* lo, int* hi) {
  const double c = gy - y_base - 0.5;
  const double flo = std::floor(c - ext), fhi = std::ceil(c + ext);
  *lo = !(flo > 0) ? 0 : (flo > rows ? rows : static_cast<int>(flo));
  *hi = !(fhi < rows - 1) ? rows - 1 : (fhi < -1 ? -1 : static_cast<int>(fhi));
}

template <typename scalar_t>
void forward_impl(const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors,
                  const scalar_t* opac, const Bins& bins, int64_t d, int width, int height, int tiles_x,
                  scalar_t* img, scalar_t* final_t, int32_t* n_contrib) {
  using V = typename Vec<scalar_t>::V;
  using M = typename Vec<scalar_t>::M;
  const int n_tiles = static_cast<int>(bins.offsets.size()) - 1;
  const scalar_t a_min = static_cast<scalar_t>(kAlphaMin), a_max = static_cast<scalar_t>(kAlphaMax);
  const scalar_t t_stop = static_cast<scalar_t>(kTStop);
  const std::vector<float>& ext = bins.row_ext;
  run_parallel(thread_count(n_tiles), [&](int, std::atomic<int>& next) {
    DenormalGuard ftz;
    std::vector<V> trans(kTile), acc(d * kTile);
    std::vector<M> last(kTile);
    for (int t = next++; t < n_tiles; t = next++) {
      const int x_base = (t % tiles_x) * kTile, y_base = (t / tiles_x) * kTile;
      const int rows = std::min(kTile, height - y_base), cols = std::min(kTile, width - x_base);
      const int lo = bins.offsets[t], hi = bins.offsets[t + 1];
      const V px = lane_centres<V>(x_base);
      // Lanes outside the image start "done" (negative transmittance); done lanes keep -T.
      V init;
      for (int j = 0; j < kTile; ++j) init[j] = j < cols ? scalar_t(1) : scalar_t(-1);
      for (int r = 0; r < kTile; ++r) {
        trans[r] = init;
        last[r] = M{};
      }
      std::fill(acc.begin(), acc.end(), V{});
      for (int k = lo; k < hi; ++k) {
        if (((k - lo) & 31) == 31) {  // every 32 Gaussians: stop when every pixel is done
          M live{};
          for (int r = 0; r < rows; ++r) live |= trans[r] > scalar_t(0);
          bool any = false;
          for (int j = 0; j < kTile; ++j) any |= live[j] != 0;
          if (!any) break;
        }
        const int32_t g = bins.ids[k];
        const float e = ext[g];
        if (e < 0) continue;  // alpha <= opacity < 1/255 everywhere
        const scalar_t gx = means2d[2 * g], gy = means2d[2 * g + 1];
        const scalar_t ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2];
        const scalar_t op = opac[g];
        int r_lo, r_hi;
        row_range(gy, e, y_base, rows, &r_lo, &r_hi);
        const typename std::remove_reference<decltype(M{}[0])>::type label = k - lo + 1;
        const scalar_t* col = colors + static_cast<int64_t>(g) * d;
        const V dx = gx - px;
        const V dx2 = (scalar_t(0.5) * ca) * dx * dx;
        for (int r = r_lo; r <= r_hi; ++r) {
          const scalar_t dy = gy - (static_cast<scalar_t>(y_base + r) + scalar_t(0.5));
          const V sigma = dx2 + (scalar_t(0.5) * cc * dy * dy) + (cb * dy) * dx;
          V alpha = op * vexp(-sigma);
          alpha = alpha < a_max ? alpha : splat<V>(a_max);
          const V tj = trans[r];
          const M ok = (sigma >= scalar_t(0)) & (alpha >= a_min) & (tj > scalar_t(0));
          alpha = ok ? alpha : V{};
          const V next_t = tj * (scalar_t(1) - alpha);
          const M stop = ok & (next_t <= t_stop);
          const M use = ok & ~stop;
          const V w = use ? alpha * tj : V{};
          trans[r] = stop ? -tj : (use ? next_t : tj);
          last[r] = use ? label + M{} : last[r];
          for (int64_t c = 0; c < d; ++c) acc[c * kTile + r] += w * col[c];
        }
      }
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) {
          const int64_t pix = static_cast<int64_t>(y_base + r) * width + x_base + j;
          final_t[pix] = std::abs(trans[r][j]);
          n_contrib[pix] = static_cast<int32_t>(last[r][j]);
          for (int64_t c = 0; c < d; ++c) img[pix * d + c] = acc[c * kTile + r][j];
        }
      }
    }
  });
}

// Per-Gaussian gradient row: [v_mean_x, v_mean_y, v_conic_a, v_conic_b, v_conic_c, v_opacity, v_color(d)]
template <typename scalar_t>
void backward_impl(const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors,
                   const scalar_t* opac, const int32_t* offsets, const int32_t* ids, int n_tiles,
                   const std::vector<float>& ext, const scalar_t* final_t, const int32_t* n_contrib,
                   const scalar_t* v_img, const scalar_t* v_alpha, int64_t n, int64_t d, int width, int height,
                   int tiles_x, scalar_t* grads /* [threads, n, 6 + d] */, int n_threads) {
  using V = typename Vec<scalar_t>::V;
  using M = typename Vec<scalar_t>::M;
  using I = typename std::remove_reference<decltype(M{}[0])>::type;
  const int64_t stride = 6 + d;
  const scalar_t a_min = static_cast<scalar_t>(kAlphaMin), a_max = static_cast<scalar_t>(kAlphaMax);
  run_parallel(n_threads, [&](int thread, std::atomic<int>&) {
    DenormalGuard ftz;
    scalar_t* gbuf = grads + static_cast<int64_t>(thread) * n * stride;
    std::fill(gbuf, gbuf + n * stride, scalar_t(0));
    std::vector<V> t_cur(kTile), va_fin(kTile), s(d * kTile), v_c(d * kTile), v_col(d);
    std::vector<M> cnt(kTile);
    for (int t = thread; t < n_tiles; t += n_threads) {  // static: see the header
      const int x_base = (t % tiles_x) * kTile, y_base = (t / tiles_x) * kTile;
      const int rows = std::min(kTile, height - y_base), cols = std::min(kTile, width - x_base);
      const int lo = offsets[t], hi = offsets[t + 1];
      if (hi == lo) continue;
      const V px = lane_centres<V>(x_base);
      I k_max = 0;
      for (int r = 0; r < kTile; ++r) {
        V tf{}, va{};
        M cn{};
        for (int j = 0; j < kTile; ++j) {
          const bool in = r < rows && j < cols;
          const int64_t pix = static_cast<int64_t>(y_base + r) * width + x_base + j;
          tf[j] = in ? final_t[pix] : scalar_t(0);
          va[j] = in ? v_alpha[pix] : scalar_t(0);
          cn[j] = in ? n_contrib[pix] : 0;
          k_max = std::max(k_max, cn[j]);
          for (int64_t c = 0; c < d; ++c) v_c[c * kTile + r][j] = in ? v_img[pix * d + c] : scalar_t(0);
        }
        t_cur[r] = tf;
        va_fin[r] = va * tf;  // d alpha_out / d alpha_i = T_final / (1 - alpha_i)
        cnt[r] = cn;
        for (int64_t c = 0; c < d; ++c) s[c * kTile + r] = V{};
      }
      for (int k = lo + static_cast<int>(k_max) - 1; k >= lo; --k) {
        const int32_t g = ids[k];
        const float e = ext[g];
        if (e < 0) continue;
        const scalar_t gx = means2d[2 * g], gy = means2d[2 * g + 1];
        const scalar_t ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2];
        const scalar_t op = opac[g];
        int r_lo, r_hi;
        row_range(gy, e, y_base, rows, &r_lo, &r_hi);
        const I label = k - lo;  // a pixel composited this Gaussian iff label < its count
        const scalar_t* col = colors + static_cast<int64_t>(g) * d;
        const V dx = gx - px;
        const V dx2 = (scalar_t(0.5) * ca) * dx * dx;
        V g_mx{}, g_my{}, g_a{}, g_b{}, g_c{}, g_o{};
        std::fill(v_col.begin(), v_col.end(), V{});
        bool any = false;
        for (int r = r_lo; r <= r_hi; ++r) {
          const scalar_t dy = gy - (static_cast<scalar_t>(y_base + r) + scalar_t(0.5));
          const V sigma = dx2 + (scalar_t(0.5) * cc * dy * dy) + (cb * dy) * dx;
          const V vis = vexp(-sigma);
          const V o_vis = op * vis;
          V alpha = o_vis < a_max ? o_vis : splat<V>(a_max);
          const M m = (sigma >= scalar_t(0)) & (alpha >= a_min) & (label < cnt[r]);
          bool row_any = false;
          for (int j = 0; j < kTile; ++j) row_any |= m[j] != 0;
          if (!row_any) continue;
          any = true;
          alpha = m ? alpha : V{};
          const V ra = scalar_t(1) / (scalar_t(1) - alpha);
          const V ti = t_cur[r] * ra;  // transmittance before this Gaussian
          const V fac = alpha * ti;    // its blending weight (0 off the mask)
          V v_al = va_fin[r] * ra;
          for (int64_t c = 0; c < d; ++c) {
            const scalar_t cv = col[c];
            const V vr = v_c[c * kTile + r];
            V& sr = s[c * kTile + r];  // sum of weighted colours behind this Gaussian
            v_al += vr * (cv * ti - sr * ra);
            sr += cv * fac;
            v_col[c] += fac * vr;
          }
          const M live = m & (o_vis <= a_max);  // alpha not clamped at 0.999
          const V v_sig = live ? -o_vis * v_al : V{};
          g_o += live ? vis * v_al : V{};
          g_a += (scalar_t(0.5) * dx * dx) * v_sig;
          g_b += (dx * dy) * v_sig;
          g_c += (scalar_t(0.5) * dy * dy) * v_sig;
          g_mx += v_sig * (ca * dx + cb * dy);
          g_my += v_sig * (cb * dx + cc * dy);
          t_cur[r] = m ? ti : t_cur[r];
        }
        if (!any) continue;
        scalar_t* gr = gbuf + static_cast<int64_t>(g) * stride;
        gr[0] += hsum(g_mx); gr[1] += hsum(g_my); gr[2] += hsum(g_a); gr[3] += hsum(g_b); gr[4] += hsum(g_c);
        gr[5] += hsum(g_o);
        for (int64_t c = 0; c < d; ++c) gr[6 + c] += hsum(v_col[c]);
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

// Returns image [H, W, D] (no background), final transmittance [H, W], per-pixel count of composited
// list entries [H, W] int32, tile offsets [n_tiles + 1] int32 and tile lists [n_isects] int32.
std::vector<torch::Tensor> rasterize_forward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors,
                                             torch::Tensor opacities, torch::Tensor radii, torch::Tensor depths,
                                             int64_t width, int64_t height) {
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
  const int64_t d = colors.size(1);
  const int tiles_x = static_cast<int>((width + kTile - 1) / kTile);
  const int tiles_y = static_cast<int>((height + kTile - 1) / kTile);
  auto opts = means2d.options();
  // Every pixel is written by its tile. torch::empty, not zeros: a torch fill would run on torch's
  // OpenMP pool, whose spin-waiting workers then compete with our threads.
  auto img = torch::empty({height, width, d}, opts);
  auto final_t = torch::empty({height, width}, opts);
  auto n_contrib = torch::empty({height, width}, opts.dtype(at::kInt));
  torch::Tensor offsets, ids;
  AT_DISPATCH_FLOATING_TYPES(dtype, "rasterize_forward", [&] {
    Bins bins = bin_gaussians<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                        depths.data_ptr<scalar_t>(), n, tiles_x, tiles_y);
    bins.row_ext = row_extents<scalar_t>(conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(), n);
    forward_impl<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                           colors.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(), bins, d,
                           static_cast<int>(width), static_cast<int>(height), tiles_x,
                           img.data_ptr<scalar_t>(), final_t.data_ptr<scalar_t>(), n_contrib.data_ptr<int32_t>());
    offsets = torch::from_blob(bins.offsets.data(), {static_cast<int64_t>(bins.offsets.size())},
                               torch::kInt).clone();
    ids = torch::from_blob(bins.ids.data(), {static_cast<int64_t>(bins.ids.size())}, torch::kInt).clone();
  });
  return {img, final_t, n_contrib, offsets, ids};
}

// Gradients w.r.t. means2d [N, 2], conics [N, 3], colors [N, D], opacities [N] given the gradients of
// the image (without background) [H, W, D] and of alpha = 1 - T_final [H, W].
std::vector<torch::Tensor> rasterize_backward(torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors,
                                              torch::Tensor opacities, torch::Tensor offsets, torch::Tensor ids,
                                              torch::Tensor final_t, torch::Tensor n_contrib, torch::Tensor v_img,
                                              torch::Tensor v_alpha, int64_t width, int64_t height) {
  const auto dtype = means2d.scalar_type();
  check_input(means2d, "means2d", dtype);
  check_input(conics, "conics", dtype);
  check_input(colors, "colors", dtype);
  check_input(opacities, "opacities", dtype);
  check_input(final_t, "final_t", dtype);
  check_input(v_img, "v_img", dtype);
  check_input(v_alpha, "v_alpha", dtype);
  check_input(offsets, "offsets", at::kInt);
  check_input(ids, "ids", at::kInt);
  check_input(n_contrib, "n_contrib", at::kInt);
  const int64_t n = means2d.size(0), d = colors.size(1);
  TORCH_CHECK(v_img.sizes() == torch::IntArrayRef({height, width, d}), "v_img must be [H, W, D]");
  TORCH_CHECK(v_alpha.numel() == height * width && final_t.numel() == height * width, "bad sizes");
  const int tiles_x = static_cast<int>((width + kTile - 1) / kTile);
  const int n_tiles = static_cast<int>(offsets.numel()) - 1;
  const int n_threads = thread_count(n_tiles);
  auto grads = torch::empty({n_threads, n, 6 + d}, means2d.options());  // zeroed per thread
  auto opts = means2d.options();
  auto v_means2d = torch::empty({n, 2}, opts), v_conics = torch::empty({n, 3}, opts);
  auto v_colors = torch::empty({n, d}, opts), v_opac = torch::empty({n}, opts);
  AT_DISPATCH_FLOATING_TYPES(dtype, "rasterize_backward", [&] {
    backward_impl<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                            opacities.data_ptr<scalar_t>(), offsets.data_ptr<int32_t>(), ids.data_ptr<int32_t>(),
                            n_tiles, row_extents<scalar_t>(conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(), n),
                            final_t.data_ptr<scalar_t>(), n_contrib.data_ptr<int32_t>(),
                            v_img.data_ptr<scalar_t>(), v_alpha.data_ptr<scalar_t>(), n, d,
                            static_cast<int>(width), static_cast<int>(height), tiles_x,
                            grads.data_ptr<scalar_t>(), n_threads);
    // Sum the per-thread buffers and split the rows into the four outputs (our threads, no torch ops).
    const scalar_t* gb = grads.data_ptr<scalar_t>();
    scalar_t *vm = v_means2d.data_ptr<scalar_t>(), *vcn = v_conics.data_ptr<scalar_t>();
    scalar_t *vcl = v_colors.data_ptr<scalar_t>(), *vo = v_opac.data_ptr<scalar_t>();
    const int64_t stride = 6 + d, chunk = 4096;
    const int n_chunks = static_cast<int>((n + chunk - 1) / chunk);
    run_parallel(std::max(1, std::min(n_threads, n_chunks)), [&](int, std::atomic<int>& next) {
      std::vector<scalar_t> row(stride);
      for (int c = next++; c < n_chunks; c = next++) {
        for (int64_t g = c * chunk; g < std::min(n, (c + 1) * chunk); ++g) {
          std::fill(row.begin(), row.end(), scalar_t(0));
          for (int t = 0; t < n_threads; ++t) {
            const scalar_t* src = gb + (static_cast<int64_t>(t) * n + g) * stride;
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
  return {v_means2d, v_conics, v_colors, v_opac};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &rasterize_forward, "tile rasterizer forward (one camera)");
  m.def("backward", &rasterize_backward, "tile rasterizer backward (one camera)");
}
