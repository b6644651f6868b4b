// CPU tile rasterizer for 3D Gaussian splatting: binning, forward and backward, written by hand.
//
// One camera per call. Inputs are screen-space Gaussians (means2d, conics, opacities, features,
// integer box radii, depths) from splat/render/_projection.py. Semantics follow gsplat 1.5.3:
// 16x16 tiles, per-tile lists sorted front to back (depth, then index), pixel centres at +0.5,
// alpha = min(0.999, o * exp(-sigma)), skip sigma < 0 or alpha < 1/255, a pixel stops before the
// Gaussian that would bring its transmittance to <= 1e-4.
//
// Layout: OpenMP over tiles. Inside a tile the loop runs Gaussian-outer, pixel-inner: each Gaussian
// updates the 16 pixels of a tile row at once (structure-of-arrays pixel state, `omp simd`), and only
// rows that its alpha >= 1/255 ellipse can reach are visited (an exact bound, so results do not change).
// Backward walks each tile's list back to front, recomputing transmittance from the stored final T and
// the per-pixel count of Gaussians that were composited (as gsplat does); per-Gaussian gradients go to
// per-thread buffers that are summed at the end (no atomics).
//
// float32 for speed and float64 for gradcheck share one template.

#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace {

constexpr int kTile = 16;
constexpr int kTilePix = kTile * kTile;
constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kTStop = 1e-4;
constexpr double kAlphaMax = 0.999;

// exp(x) in float: Cody-Waite range reduction to |r| <= ln2/2 and a degree-6 polynomial (Cephes
// coefficients), about 1 ulp; branch-free so that it vectorizes. x is clamped to [-87, 88].
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(float));
  return y * scale;
}
inline double exp_approx(double x) { return std::exp(x); }

struct Bins {
  std::vector<int32_t> offsets;  // [n_tiles + 1]
  std::vector<int32_t> ids;      // [n_isects] Gaussian index, per tile front to back
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
  for (int t = 0; t < n_tiles; ++t) bins.offsets[t + 1] += bins.offsets[t];
  bins.ids.resize(bins.offsets[n_tiles]);
  std::vector<int32_t> cursor(bins.offsets.begin(), bins.offsets.end() - 1);
  for (const auto& e : order) {
    const int32_t* b = &box[4 * e.second];
    for (int ty = b[2]; ty < b[3]; ++ty)
      for (int tx = b[0]; tx < b[1]; ++tx) bins.ids[cursor[ty * tiles_x + tx]++] = e.second;
  }
  return bins;
}

// Rows [lo, hi] of a tile that the Gaussian's alpha >= 1/255 ellipse can reach (conservative).
template <typename scalar_t>
inline void row_range(scalar_t gy, scalar_t ca, scalar_t cb, scalar_t cc, scalar_t op, int y_base, int rows,
                      int* lo, int* hi) {
  *lo = 0;
  *hi = rows - 1;
  const double det = static_cast<double>(ca) * cc - static_cast<double>(cb) * cb;
  const double smax = std::log(static_cast<double>(op) / kAlphaMin);  // sigma must be <= smax
  if (!(det > 0) || !(ca > 0)) return;
  const double ey = std::sqrt(2.0 * std::max(smax, 0.0) * static_cast<double>(ca) / det);
  if (!std::isfinite(ey)) return;
  const double margin = 0.01 + 1e-4 * ey;
  const double c = static_cast<double>(gy) - y_base - 0.5;
  const double flo = std::floor(c - ey - margin), fhi = std::ceil(c + ey + margin);
  *lo = flo < 0 ? 0 : (flo > rows ? rows : static_cast<int>(flo));
  *hi = fhi > rows - 1 ? rows - 1 : (fhi < -1 ? -1 : static_cast<int>(fhi));
}

template <typename scalar_t>
void forward_impl(const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors,
                  const scalar_t* opac, const Bins& bins, int64_t d, int width, int height, int tiles_x,
                  scalar_t* img, scalar_t* final_t, int32_t* n_contrib) {
  const int n_tiles = static_cast<int>(bins.offsets.size()) - 1;
  const scalar_t a_min = static_cast<scalar_t>(kAlphaMin), a_max = static_cast<scalar_t>(kAlphaMax);
  const scalar_t t_stop = static_cast<scalar_t>(kTStop);
#pragma omp parallel num_threads(std::max(1, std::min(at::get_num_threads(), n_tiles)))
  {
    std::vector<scalar_t> trans(kTilePix), acc(d * kTilePix);
    std::vector<int32_t> last(kTilePix);
    alignas(64) scalar_t w[kTile];
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < n_tiles; ++t) {
      const int x_base = (t % tiles_x) * kTile, y_base = (t / tiles_x) * kTile;
      const int rows = std::min(kTile, height - y_base), cols = std::min(kTile, width - x_base);
      const int lo = bins.offsets[t], hi = bins.offsets[t + 1];
      for (int p = 0; p < kTilePix; ++p) trans[p] = (p % kTile) < cols ? scalar_t(1) : scalar_t(-1);
      std::fill(acc.begin(), acc.end(), scalar_t(0));
      std::fill(last.begin(), last.end(), 0);
      int n_active = rows * cols;
      for (int k = lo; k < hi && n_active > 0; ++k) {
        const int32_t g = bins.ids[k];
        const scalar_t gx = means2d[2 * g], gy = means2d[2 * g + 1];
        const scalar_t ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2];
        const scalar_t op = opac[g];
        if (!(op >= a_min)) continue;  // alpha <= opacity < 1/255 everywhere
        int r_lo, r_hi;
        row_range(gy, ca, cb, cc, op, y_base, rows, &r_lo, &r_hi);
        const int32_t label = k - lo + 1;
        const scalar_t* col = colors + static_cast<int64_t>(g) * d;
        for (int r = r_lo; r <= r_hi; ++r) {
          const scalar_t dy = gy - (static_cast<scalar_t>(y_base + r) + scalar_t(0.5));
          scalar_t* tr = &trans[r * kTile];
          int32_t* lr = &last[r * kTile];
          int stops = 0;
#pragma omp simd reduction(+ : stops)
          for (int j = 0; j < kTile; ++j) {
            const scalar_t dx = gx - (static_cast<scalar_t>(x_base + j) + scalar_t(0.5));
            const scalar_t sigma = scalar_t(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
            const scalar_t alpha = std::min(a_max, op * exp_approx(-sigma));
            const scalar_t tj = tr[j];
            const bool ok = (sigma >= 0) & (alpha >= a_min) & (tj > 0);
            const scalar_t next_t = tj * (scalar_t(1) - alpha);
            const bool stop = ok & (next_t <= t_stop);
            const bool use = ok & !stop;
            w[j] = use ? alpha * tj : scalar_t(0);
            tr[j] = stop ? -tj : (use ? next_t : tj);
            lr[j] = use ? label : lr[j];
            stops += stop ? 1 : 0;
          }
          n_active -= stops;
          for (int64_t c = 0; c < d; ++c) {
            const scalar_t cv = col[c];
            scalar_t* ar = &acc[c * kTilePix + r * kTile];
#pragma omp simd
            for (int j = 0; j < kTile; ++j) ar[j] += w[j] * cv;
          }
        }
      }
      for (int r = 0; r < rows; ++r) {
        for (int j = 0; j < cols; ++j) {
          const int p = r * kTile + j;
          const int64_t pix = static_cast<int64_t>(y_base + r) * width + x_base + j;
          final_t[pix] = std::abs(trans[p]);
          n_contrib[pix] = last[p];
          for (int64_t c = 0; c < d; ++c) img[pix * d + c] = acc[c * kTilePix + p];
        }
      }
    }
  }
}

// Per-Gaussian gradient row: [v_mean_x, v_mean_y, v_conic_a, v_conic_b, v_conic_c, v_opacity, v_color(d)]
template <typename scalar_t>
void backward_impl(const scalar_t* means2d, const scalar_t* conics, const scalar_t* colors,
                   const scalar_t* opac, const int32_t* offsets, const int32_t* ids, int n_tiles,
                   const scalar_t* final_t, const int32_t* n_contrib, const scalar_t* v_img,
                   const scalar_t* v_alpha, int64_t n, int64_t d, int width, int height, int tiles_x,
                   scalar_t* grads /* [threads, n, 6 + d] */, int n_threads) {
  const int64_t stride = 6 + d;
  const scalar_t a_min = static_cast<scalar_t>(kAlphaMin), a_max = static_cast<scalar_t>(kAlphaMax);
#pragma omp parallel num_threads(n_threads)
  {
    scalar_t* gbuf = grads + static_cast<int64_t>(omp_get_thread_num()) * n * stride;
    std::vector<scalar_t> t_cur(kTilePix), t_fin(kTilePix), v_a(kTilePix), s(d * kTilePix), v_c(d * kTilePix);
    std::vector<int32_t> cnt(kTilePix);
    std::vector<scalar_t> v_col(d);
    alignas(64) scalar_t fac[kTile], ra[kTile], ti[kTile], vis[kTile], dxs[kTile], v_al[kTile];
    alignas(64) bool msk[kTile];
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < n_tiles; ++t) {
      const int x_base = (t % tiles_x) * kTile, y_base = (t / tiles_x) * kTile;
      const int rows = std::min(kTile, height - y_base), cols = std::min(kTile, width - x_base);
      const int lo = offsets[t], hi = offsets[t + 1];
      if (hi == lo) continue;
      int k_max = 0;
      for (int p = 0; p < kTilePix; ++p) {
        const int r = p / kTile, j = p % kTile;
        const bool in = r < rows && j < cols;
        const int64_t pix = static_cast<int64_t>(y_base + r) * width + x_base + j;
        t_fin[p] = in ? final_t[pix] : scalar_t(0);
        t_cur[p] = t_fin[p];
        cnt[p] = in ? n_contrib[pix] : 0;
        v_a[p] = in ? v_alpha[pix] : scalar_t(0);
        for (int64_t c = 0; c < d; ++c) {
          v_c[c * kTilePix + p] = in ? v_img[pix * d + c] : scalar_t(0);
          s[c * kTilePix + p] = 0;
        }
        k_max = std::max(k_max, cnt[p]);
      }
      for (int k = lo + k_max - 1; k >= lo; --k) {
        const int32_t g = ids[k];
        const scalar_t gx = means2d[2 * g], gy = means2d[2 * g + 1];
        const scalar_t ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2];
        const scalar_t op = opac[g];
        if (!(op >= a_min)) continue;
        int r_lo, r_hi;
        row_range(gy, ca, cb, cc, op, y_base, rows, &r_lo, &r_hi);
        const int32_t label = k - lo;  // pixel p composited this Gaussian iff label < cnt[p]
        const scalar_t* col = colors + static_cast<int64_t>(g) * d;
        scalar_t g_mx = 0, g_my = 0, g_a = 0, g_b = 0, g_c = 0, g_o = 0;
        std::fill(v_col.begin(), v_col.end(), scalar_t(0));
        bool any = false;
        for (int r = r_lo; r <= r_hi; ++r) {
          const scalar_t dy = gy - (static_cast<scalar_t>(y_base + r) + scalar_t(0.5));
          const int base = r * kTile;
          int n_m = 0;
#pragma omp simd reduction(+ : n_m)
          for (int j = 0; j < kTile; ++j) {
            const scalar_t dx = gx - (static_cast<scalar_t>(x_base + j) + scalar_t(0.5));
            const scalar_t sigma = scalar_t(0.5) * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
            const scalar_t e = exp_approx(-sigma);
            const scalar_t alpha = std::min(a_max, op * e);
            const bool m = (sigma >= 0) & (alpha >= a_min) & (label < cnt[base + j]);
            const scalar_t inv = scalar_t(1) / (scalar_t(1) - alpha);
            const scalar_t tb = t_cur[base + j] * inv;  // transmittance before this Gaussian
            msk[j] = m;
            ra[j] = m ? inv : scalar_t(0);
            ti[j] = tb;
            fac[j] = m ? alpha * tb : scalar_t(0);
            vis[j] = e;
            dxs[j] = dx;
            v_al[j] = 0;
            n_m += m ? 1 : 0;
          }
          if (n_m == 0) continue;
          any = true;
          for (int64_t c = 0; c < d; ++c) {
            const scalar_t cv = col[c];
            scalar_t* sr = &s[c * kTilePix + base];
            const scalar_t* vr = &v_c[c * kTilePix + base];
            scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int j = 0; j < kTile; ++j) {
              v_al[j] += msk[j] ? vr[j] * (cv * ti[j] - sr[j] * ra[j]) : scalar_t(0);
              sr[j] += cv * fac[j];
              acc += fac[j] * vr[j];
            }
            v_col[c] += acc;
          }
#pragma omp simd reduction(+ : g_mx, g_my, g_a, g_b, g_c, g_o)
          for (int j = 0; j < kTile; ++j) {
            const scalar_t va = v_al[j] + v_a[base + j] * t_fin[base + j] * ra[j];
            const bool live = msk[j] & (op * vis[j] <= a_max);
            const scalar_t v_sig = live ? -op * vis[j] * va : scalar_t(0);
            const scalar_t dx = dxs[j];
            g_o += live ? vis[j] * va : scalar_t(0);
            g_a += scalar_t(0.5) * dx * dx * v_sig;
            g_b += dx * dy * v_sig;
            g_c += scalar_t(0.5) * dy * dy * v_sig;
            g_mx += v_sig * (ca * dx + cb * dy);
            g_my += v_sig * (cb * dx + cc * dy);
            t_cur[base + j] = msk[j] ? ti[j] : t_cur[base + j];
          }
        }
        if (!any) continue;
        scalar_t* gr = gbuf + static_cast<int64_t>(g) * stride;
        gr[0] += g_mx; gr[1] += g_my; gr[2] += g_a; gr[3] += g_b; gr[4] += g_c; gr[5] += g_o;
        for (int64_t c = 0; c < d; ++c) gr[6 + c] += v_col[c];
      }
    }
  }
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
  auto img = torch::zeros({height, width, d}, opts);
  auto final_t = torch::ones({height, width}, opts);
  auto n_contrib = torch::zeros({height, width}, opts.dtype(at::kInt));
  torch::Tensor offsets, ids;
  AT_DISPATCH_FLOATING_TYPES(dtype, "rasterize_forward", [&] {
    Bins bins = bin_gaussians<scalar_t>(means2d.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                        depths.data_ptr<scalar_t>(), n, tiles_x, tiles_y);
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
  const int n_threads = std::max(1, std::min(at::get_num_threads(), n_tiles));
  auto grads = torch::zeros({n_threads, n, 6 + d}, means2d.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "rasterize_backward", [&] {
    backward_impl<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                            opacities.data_ptr<scalar_t>(), offsets.data_ptr<int32_t>(), ids.data_ptr<int32_t>(),
                            n_tiles, final_t.data_ptr<scalar_t>(), n_contrib.data_ptr<int32_t>(),
                            v_img.data_ptr<scalar_t>(), v_alpha.data_ptr<scalar_t>(), n, d,
                            static_cast<int>(width), static_cast<int>(height), tiles_x,
                            grads.data_ptr<scalar_t>(), n_threads);
  });
  auto g = n_threads == 1 ? grads[0] : grads.sum(0);
  return {g.slice(1, 0, 2).contiguous(), g.slice(1, 2, 5).contiguous(), g.slice(1, 6, 6 + d).contiguous(),
          g.select(1, 5).contiguous()};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &rasterize_forward, "tile rasterizer forward (one camera)");
  m.def("backward", &rasterize_backward, "tile rasterizer backward (one camera)");
}
