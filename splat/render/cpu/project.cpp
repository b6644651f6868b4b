// Per-Gaussian stages of the "cpu" backend, forward and backward written by hand: the EWA projection
// (with the input checks) and the view-dependent SH colours; and, sharing this extension's build, the
// procedural Gaussians' pushforward from canonical to world space (its own section at the end).
//
// project_forward projects N Gaussians into C pinhole cameras and returns what project() in
// splat/render/_projection.py returns with cull_by_opacity=True (means2d, conics, depths, int32 radii,
// opacities times the antialiasing compensation when asked, compensations), with the gsplat 1.5.3
// semantics documented there. As ~100 elementwise torch ops on [C, N] tensors, the projection's
// forward and autograd backward cost several ms per training step at N ~ 25k; per Gaussian and camera
// it is ~150 flops: here about 1 ms forward and 1.5 ms backward for 25k Gaussians on one core.
//
// The same pass checks the inputs that rasterize() would otherwise check with torch passes, and only
// counts (the caller raises): rows with a NaN/Inf in the means, the opacities, a [N, 3, 3] covariance
// or any further per-Gaussian tensor the caller names (colours, quaternions, scales); opacities
// outside [0, 1]; and, for covariances given as [N, 3, 3], symmetric positive semi-definiteness with
// functional._check_psd's tolerances (in double). Rows with a NaN/Inf are not range- or PSD-checked.
//
// Exactness. The forward follows the torch code's operation order, and floating-point contraction is
// off in this file (GCC contracts a * b + c into an FMA by default), so the results match torch's to
// the last bit except where torch uses other kernels: its matmul for the camera-space point, its
// vectorised sqrt and log (Sleef; within an ulp of the correctly rounded results used here). Radii,
// ceil(extent * sqrt(.)), can then differ only when that product is within an ulp of an integer. The
// backward recomputes the forward's intermediates from the inputs (the autograd Function saves only
// those) and applies the chain rule through the same expressions, with torch's clamp and where masks:
// the Jacobian's x/z and y/z pass a gradient only inside [-lim, lim] (ends included), z only where
// |z| > 1e-12, the determinant only where it is > 0. One deliberate difference: where
// det(cov2d) / det(cov2d + eps2d I) is exactly 0 (a rank-deficient 2D covariance, antialiased),
// torch's sqrt backward gives NaN; the compensation passes no gradient there.
//
// Gradients go to means [N, 3], covariances ([N, 3, 3]: each off-diagonal pair gets half the
// gradient of its symmetrised entry 0.5 (c_ij + c_ji), as covar_components' autograd gives; or the
// six entries [N, 6]), opacities [N] and viewmats [C, 4, 4] (rows 0-2; row 3 is unused). A (camera,
// Gaussian) pair whose output gradients are all zero is skipped.
//
// sh_forward / sh_backward: splat/render/_sh.py's sh_to_color of the directions from each camera
// centre to the means, degree 0-3, with gradients to the coefficients, the means and viewmats.
//
// Threads: std::thread over chunks of Gaussians (run_parallel as in rasterize.cpp and for its
// reason: no spin-waiting OpenMP pool on shared cores). Each Gaussian's outputs and gradients are
// written by one thread; the viewmat gradients are summed per chunk in double and then over the chunks
// in order, so everything is bitwise the same for any thread count. float32 for speed and float64
// for gradcheck share one template.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <thread>
#include <type_traits>
#include <vector>

#pragma GCC optimize("fp-contract=off")

namespace {

constexpr int64_t kChunk = 1024;  // Gaussians per work item
constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kPsdTol = 1e-4;
constexpr int kVmGrad = 12;  // viewmat gradient entries per camera: rows 0-2 of the 4x4

// Runs body(next) on n_threads threads (the caller is one of them); bodies pull work indices from the
// shared counter. A blocking join, never a spinning pool (see rasterize.cpp).
template <typename F>
void run_parallel(int n_threads, F body) {
  std::atomic<int64_t> next{0};
  if (n_threads <= 1) {
    body(next);
    return;
  }
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back([&body, &next] { body(next); });
  body(next);
  for (auto& th : pool) th.join();
}

inline int thread_count(int64_t work_items) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), work_items)));
}

// One camera's constants, computed as the torch code computes its [C, 1] tensors (a Python scalar
// divided by a tensor is evaluated by torch as reciprocal(tensor) * scalar).
template <typename T>
struct Camera {
  T r[3][3], t[3], k[2][3];
  T lim_xp, lim_xn, lim_yp, lim_yn;
  Camera(const T* vm, const T* K, int64_t width, int64_t height) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) r[i][j] = vm[4 * i + j];
      t[i] = vm[4 * i + 3];
    }
    for (int j = 0; j < 3; ++j) {
      k[0][j] = K[j];
      k[1][j] = K[3 + j];
    }
    const T fx = K[0], fy = K[4], cx = K[2], cy = K[5];
    const T margin_x = T(0.3) * ((T(1) / fx) * T(0.5 * static_cast<double>(width)));
    const T margin_y = T(0.3) * ((T(1) / fy) * T(0.5 * static_cast<double>(height)));
    lim_xp = (T(width) - cx) / fx + margin_x;
    lim_xn = cx / fx + margin_x;
    lim_yp = (T(height) - cy) / fy + margin_y;
    lim_yn = cy / fy + margin_y;
  }
};

// The six covariance entries xx, xy, xz, yy, yz, zz of Gaussian g: from [N, 3, 3] symmetrised as
// 0.5 (c_ij + c_ji) (splat.maths.covar_components), or read from [N, 6].
template <typename T>
inline void load_cov(const T* cov, int layout, int64_t g, T s[6]) {
  if (layout == 9) {
    const T* c = cov + 9 * g;
    s[0] = c[0];
    s[1] = T(0.5) * (c[1] + c[3]);
    s[2] = T(0.5) * (c[2] + c[6]);
    s[3] = c[4];
    s[4] = T(0.5) * (c[5] + c[7]);
    s[5] = c[8];
  } else {
    for (int i = 0; i < 6; ++i) s[i] = cov[6 * g + i];
  }
}

// The EWA intermediates of one Gaussian in one camera (the torch code's names).
template <typename T>
struct Ewa {
  T tx, ty, tz, inv_z, jx, jy, fxz, fyz;
  T t1[3], t2[3];    // rows of J R: d pixel / d world point
  T st1[3], st2[3];  // Sigma t1, Sigma t2
  T a, b, c;         // 2D covariance [[a, b], [b, c]] before eps2d
  T pu, pv;          // K t: the pixel position times z
  bool z_ok, jx_free, jy_free;
};

template <typename T>
inline T clamp_like_torch(T x, T lo, T hi) {
  return std::isnan(x) ? x : std::min(std::max(x, lo), hi);
}

template <typename T>
inline void ewa(const Camera<T>& cam, const T m[3], const T s[6], Ewa<T>& e) {
  const auto& r = cam.r;
  e.tx = (m[0] * r[0][0] + m[1] * r[0][1] + m[2] * r[0][2]) + cam.t[0];
  e.ty = (m[0] * r[1][0] + m[1] * r[1][1] + m[2] * r[1][2]) + cam.t[1];
  e.tz = (m[0] * r[2][0] + m[1] * r[2][1] + m[2] * r[2][2]) + cam.t[2];
  e.z_ok = std::abs(e.tz) > T(1e-12);
  e.inv_z = T(1) / (e.z_ok ? e.tz : T(1e-12));
  const T xz = e.tx * e.inv_z, yz = e.ty * e.inv_z;
  e.jx_free = xz >= -cam.lim_xn && xz <= cam.lim_xp;
  e.jy_free = yz >= -cam.lim_yn && yz <= cam.lim_yp;
  e.jx = clamp_like_torch(xz, -cam.lim_xn, cam.lim_xp);
  e.jy = clamp_like_torch(yz, -cam.lim_yn, cam.lim_yp);
  e.fxz = cam.k[0][0] * e.inv_z;
  e.fyz = cam.k[1][1] * e.inv_z;
  for (int k = 0; k < 3; ++k) {
    e.t1[k] = e.fxz * (r[0][k] - e.jx * r[2][k]);
    e.t2[k] = e.fyz * (r[1][k] - e.jy * r[2][k]);
  }
  const T* t1 = e.t1;
  const T* t2 = e.t2;
  e.st1[0] = s[0] * t1[0] + s[1] * t1[1] + s[2] * t1[2];
  e.st1[1] = s[1] * t1[0] + s[3] * t1[1] + s[4] * t1[2];
  e.st1[2] = s[2] * t1[0] + s[4] * t1[1] + s[5] * t1[2];
  e.st2[0] = s[0] * t2[0] + s[1] * t2[1] + s[2] * t2[2];
  e.st2[1] = s[1] * t2[0] + s[3] * t2[1] + s[4] * t2[2];
  e.st2[2] = s[2] * t2[0] + s[4] * t2[1] + s[5] * t2[2];
  e.a = t1[0] * e.st1[0] + t1[1] * e.st1[1] + t1[2] * e.st1[2];
  e.b = t2[0] * e.st1[0] + t2[1] * e.st1[1] + t2[2] * e.st1[2];
  e.c = t2[0] * e.st2[0] + t2[1] * e.st2[1] + t2[2] * e.st2[2];
  e.pu = cam.k[0][0] * e.tx + cam.k[0][1] * e.ty + cam.k[0][2] * e.tz;
  e.pv = cam.k[1][0] * e.tx + cam.k[1][1] * e.ty + cam.k[1][2] * e.tz;
}

// True when none of p[0..k) is NaN or +-Inf: an exponent field of all ones, tested on the bits so that
// the loop vectorises (a branch per element would not).
template <typename T>
inline bool all_finite(const T* p, int64_t k) {
  using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
  constexpr U exponent = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U bad = 0;
  for (int64_t i = 0; i < k; ++i) {
    U u;
    std::memcpy(&u, p + i, sizeof u);
    bad |= static_cast<U>((u & exponent) == exponent);
  }
  return bad == 0;
}

// A float radius as torch's .to(torch.int32) gives it on x86: INT32_MIN when out of range.
inline int32_t radius_to_int(double r) {
  return r < 2147483648.0 ? static_cast<int32_t>(r) : std::numeric_limits<int32_t>::min();
}

// functional._check_psd for one finite [3, 3] covariance, in double.
template <typename T>
bool psd_ok(const T* p) {
  double c[3][3];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) c[i][j] = static_cast<double>(p[3 * i + j]);
  const double scale = std::max(std::max(std::max(std::abs(c[0][0]), std::abs(c[1][1])), std::abs(c[2][2])), 1e-30);
  double asym = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) asym = std::max(asym, std::abs(c[i][j] - c[j][i]));
  if (asym > kPsdTol * scale) return false;
  for (int i = 0; i < 3; ++i)
    if (c[i][i] < -kPsdTol * scale) return false;
  const double m01 = c[0][0] * c[1][1] - c[0][1] * c[1][0];
  const double m02 = c[0][0] * c[2][2] - c[0][2] * c[2][0];
  const double m12 = c[1][1] * c[2][2] - c[1][2] * c[2][1];
  const double bound2 = -kPsdTol * (scale * scale);
  if (m01 < bound2 || m02 < bound2 || m12 < bound2) return false;
  const double det = c[0][0] * (c[1][1] * c[2][2] - c[1][2] * c[2][1]) -
                     c[0][1] * (c[1][0] * c[2][2] - c[1][2] * c[2][0]) +
                     c[0][2] * (c[1][0] * c[2][1] - c[1][1] * c[2][0]);
  return !(det < -kPsdTol * (scale * scale * scale));
}

// Input counts of one chunk: rows with a NaN/Inf, finite rows with opacity outside [0, 1], finite
// rows with a non-PSD [3, 3] covariance and the first of those (-1: none).
struct Counts {
  int64_t nonfinite = 0, bad_opacity = 0, bad_psd = 0, first_bad_psd = -1;
};

struct Settings {
  int64_t width, height;
  double near_plane, far_plane, eps2d;
  bool antialiased;
};

template <typename T>
struct ForwardOut {
  T *means2d, *conics, *depths, *opac, *comp;
  int32_t* radii;
};

template <typename T>
void forward_impl(const T* means, const T* cov, int layout, const T* opac, const std::vector<Camera<T>>& cams,
                  const std::vector<std::pair<const T*, int64_t>>& checks, int64_t n, const Settings& st,
                  ForwardOut<T> out, Counts& counts) {
  const int64_t n_cam = static_cast<int64_t>(cams.size());
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<Counts> per_chunk(n_chunks);
  const T eps = T(st.eps2d), near = T(st.near_plane), far = T(st.far_plane), amin = T(kAlphaMin);
  const T w = T(st.width), h = T(st.height);
  run_parallel(thread_count(n_chunks), [&](std::atomic<int64_t>& next) {
    for (int64_t ch = next++; ch < n_chunks; ch = next++) {
      Counts& cnt = per_chunk[ch];
      for (int64_t g = ch * kChunk; g < std::min(n, (ch + 1) * kChunk); ++g) {
        const T m[3] = {means[3 * g], means[3 * g + 1], means[3 * g + 2]};
        const T o = opac[g];
        bool finite = all_finite(m, 3) && all_finite(&o, 1) && (layout != 9 || all_finite(cov + 9 * g, 9));
        for (const auto& chk : checks) finite = finite && all_finite(chk.first + g * chk.second, chk.second);
        if (!finite) {
          ++cnt.nonfinite;
        } else {
          if (o < T(0) || o > T(1)) ++cnt.bad_opacity;
          if (layout == 9 && !psd_ok(cov + 9 * g)) {
            if (cnt.bad_psd++ == 0) cnt.first_bad_psd = g;
          }
        }
        T s[6];
        load_cov(cov, layout, g, s);
        for (int64_t ci = 0; ci < n_cam; ++ci) {
          Ewa<T> e;
          ewa(cams[ci], m, s, e);
          const int64_t k = ci * n + g;
          const T u = e.pu * e.inv_z, v = e.pv * e.inv_z;
          const T det_orig = e.a * e.c - e.b * e.b;
          const T ap = e.a + eps, cp = e.c + eps;
          const T det = ap * cp - e.b * e.b;
          const bool det_ok = det > T(0);
          const T inv_det = T(1) / (det_ok ? det : T(1));
          const T ratio = det_orig * inv_det;
          const T comp = std::sqrt(ratio < T(0) ? T(0) : ratio);  // clamp(min=0) keeps a NaN
          const T op = st.antialiased ? o * comp : o;
          out.means2d[2 * k] = u;
          out.means2d[2 * k + 1] = v;
          out.conics[3 * k] = cp * inv_det;
          out.conics[3 * k + 1] = -e.b * inv_det;
          out.conics[3 * k + 2] = ap * inv_det;
          out.depths[k] = e.tz;
          out.opac[k] = op;
          out.comp[k] = comp;
          // Radii (no gradient): opacity-aware extent, culling as in _projection.project.
          bool valid = det_ok && e.tz >= near && e.tz <= far && op >= amin;
          T extent = std::sqrt(T(2) * std::log((op < amin ? amin : op) / amin));
          extent = std::isnan(extent) ? extent : std::min(T(3.33), extent);
          const T rx = std::ceil(extent * std::sqrt(ap < T(0) ? T(0) : ap));
          const T ry = std::ceil(extent * std::sqrt(cp < T(0) ? T(0) : cp));
          valid = valid && (rx > T(0) || ry > T(0));
          valid = valid && u + rx > T(0) && u - rx < w && v + ry > T(0) && v - ry < h;
          out.radii[2 * k] = valid && std::isfinite(rx) ? radius_to_int(rx) : 0;
          out.radii[2 * k + 1] = valid && std::isfinite(ry) ? radius_to_int(ry) : 0;
        }
      }
    }
  });
  for (const Counts& c : per_chunk) {  // in chunk order: the first bad row is the lowest index
    if (c.bad_psd && counts.first_bad_psd < 0) counts.first_bad_psd = c.first_bad_psd;
    counts.nonfinite += c.nonfinite;
    counts.bad_opacity += c.bad_opacity;
    counts.bad_psd += c.bad_psd;
  }
}

// Output gradients ([C, N, *] each, null when absent: zero).
template <typename T>
struct Upstream {
  const T *means2d, *conics, *depths, *opac, *comp;
};

template <typename T>
struct Grads {
  T *means, *cov, *opac;
  double* viewmats;  // [C, 12]
};

template <typename T>
void backward_impl(const T* means, const T* cov, int layout, const T* opac, const std::vector<Camera<T>>& cams,
                   int64_t n, const Settings& st, Upstream<T> up, Grads<T> out) {
  const int64_t n_cam = static_cast<int64_t>(cams.size());
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> vm_part(static_cast<size_t>(n_chunks * n_cam * kVmGrad), 0.0);
  const T eps = T(st.eps2d);
  auto at = [](const T* p, int64_t i) { return p ? p[i] : T(0); };
  run_parallel(thread_count(n_chunks), [&](std::atomic<int64_t>& next) {
    for (int64_t ch = next++; ch < n_chunks; ch = next++) {
      double* vm_acc = vm_part.data() + ch * n_cam * kVmGrad;
      for (int64_t g = ch * kChunk; g < std::min(n, (ch + 1) * kChunk); ++g) {
        const T m[3] = {means[3 * g], means[3 * g + 1], means[3 * g + 2]};
        const T o = opac[g];
        T s[6];
        load_cov(cov, layout, g, s);
        T v_m[3] = {0, 0, 0}, v_o = 0;
        T sym[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};  // dL/dSigma as a symmetric matrix
        for (int64_t ci = 0; ci < n_cam; ++ci) {
          const int64_t k = ci * n + g;
          const T g_u = at(up.means2d, 2 * k), g_v = at(up.means2d, 2 * k + 1);
          const T g_c0 = at(up.conics, 3 * k), g_c1 = at(up.conics, 3 * k + 1), g_c2 = at(up.conics, 3 * k + 2);
          const T g_z = at(up.depths, k), g_op = at(up.opac, k);
          T v_comp = at(up.comp, k);
          if (g_u == T(0) && g_v == T(0) && g_c0 == T(0) && g_c1 == T(0) && g_c2 == T(0) && g_z == T(0) &&
              g_op == T(0) && v_comp == T(0))
            continue;
          const Camera<T>& cam = cams[ci];
          Ewa<T> e;
          ewa(cam, m, s, e);
          const T ap = e.a + eps, cp = e.c + eps;
          const T det = ap * cp - e.b * e.b;
          const bool det_ok = det > T(0);
          const T inv_det = T(1) / (det_ok ? det : T(1));
          T v_a = 0, v_b = 0, v_c = 0, v_inv_det = 0;
          if (st.antialiased) {
            const T det_orig = e.a * e.c - e.b * e.b;
            const T ratio = det_orig * inv_det;
            const T comp = std::sqrt(ratio < T(0) ? T(0) : ratio);
            v_o += g_op * comp;
            v_comp += g_op * o;
            if (ratio > T(0)) {
              const T v_ratio = v_comp / (T(2) * comp);
              const T v_det_orig = v_ratio * inv_det;
              v_inv_det += v_ratio * det_orig;
              v_a += v_det_orig * e.c;
              v_c += v_det_orig * e.a;
              v_b -= T(2) * e.b * v_det_orig;
            }
          } else {
            v_o += g_op;
          }
          // conics = (c', -b, a') * inv_det, inv_det = 1 / det where det > 0
          v_inv_det += g_c0 * cp - g_c1 * e.b + g_c2 * ap;
          T v_ap = g_c2 * inv_det, v_cp = g_c0 * inv_det;
          v_b -= g_c1 * inv_det;
          if (det_ok) {
            const T v_det = -v_inv_det * (inv_det * inv_det);
            v_ap += v_det * cp;
            v_cp += v_det * ap;
            v_b -= T(2) * e.b * v_det;
          }
          v_a += v_ap;
          v_c += v_cp;
          // a = t1' S t1, b = t2' S t1, c = t2' S t2
          for (int i = 0; i < 3; ++i)
            for (int j = i; j < 3; ++j)
              sym[i][j] += v_a * e.t1[i] * e.t1[j] + T(0.5) * v_b * (e.t1[i] * e.t2[j] + e.t2[i] * e.t1[j]) +
                           v_c * e.t2[i] * e.t2[j];
          T v_t1[3], v_t2[3];
          for (int i = 0; i < 3; ++i) {
            v_t1[i] = T(2) * v_a * e.st1[i] + v_b * e.st2[i];
            v_t2[i] = v_b * e.st1[i] + T(2) * v_c * e.st2[i];
          }
          // t1_k = fx/z (r0k - jx r2k), t2_k = fy/z (r1k - jy r2k)
          const auto& r = cam.r;
          T v_r[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
          T v_fxz = 0, v_fyz = 0, v_jx = 0, v_jy = 0;
          for (int i = 0; i < 3; ++i) {
            v_fxz += v_t1[i] * (r[0][i] - e.jx * r[2][i]);
            v_fyz += v_t2[i] * (r[1][i] - e.jy * r[2][i]);
            const T w1 = v_t1[i] * e.fxz, w2 = v_t2[i] * e.fyz;
            v_r[0][i] += w1;
            v_r[1][i] += w2;
            v_r[2][i] -= w1 * e.jx + w2 * e.jy;
            v_jx -= w1 * r[2][i];
            v_jy -= w2 * r[2][i];
          }
          T v_inv_z = v_fxz * cam.k[0][0] + v_fyz * cam.k[1][1] + g_u * e.pu + g_v * e.pv;
          const T v_pu = g_u * e.inv_z, v_pv = g_v * e.inv_z;
          T v_t[3] = {v_pu * cam.k[0][0] + v_pv * cam.k[1][0], v_pu * cam.k[0][1] + v_pv * cam.k[1][1],
                      v_pu * cam.k[0][2] + v_pv * cam.k[1][2] + g_z};
          if (e.jx_free) {
            v_t[0] += v_jx * e.inv_z;
            v_inv_z += v_jx * e.tx;
          }
          if (e.jy_free) {
            v_t[1] += v_jy * e.inv_z;
            v_inv_z += v_jy * e.ty;
          }
          if (e.z_ok) v_t[2] -= v_inv_z * (e.inv_z * e.inv_z);
          // t = R m + T
          double* acc = vm_acc + ci * kVmGrad;
          for (int i = 0; i < 3; ++i) {
            for (int j = 0; j < 3; ++j) {
              v_m[j] += v_t[i] * r[i][j];
              acc[4 * i + j] += static_cast<double>(v_r[i][j] + v_t[i] * m[j]);
            }
            acc[4 * i + 3] += static_cast<double>(v_t[i]);
          }
        }
        for (int j = 0; j < 3; ++j) out.means[3 * g + j] = v_m[j];
        out.opac[g] = v_o;
        if (layout == 9) {
          T* c = out.cov + 9 * g;
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) c[3 * i + j] = i <= j ? sym[i][j] : sym[j][i];
        } else {
          T* c = out.cov + 6 * g;
          c[0] = sym[0][0];
          c[1] = T(2) * sym[0][1];
          c[2] = T(2) * sym[0][2];
          c[3] = sym[1][1];
          c[4] = T(2) * sym[1][2];
          c[5] = sym[2][2];
        }
      }
    }
  });
  for (int64_t ch = 0; ch < n_chunks; ++ch)
    for (int64_t i = 0; i < n_cam * kVmGrad; ++i) out.viewmats[i] += vm_part[ch * n_cam * kVmGrad + i];
}

void check_input(const torch::Tensor& x, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(x.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(x.scalar_type() == dtype, name, " has dtype ", x.scalar_type(), ", expected ", dtype);
}

// Shapes of the shared inputs; returns the covariance layout (9: [N, 3, 3], 6: [N, 6]).
int check_inputs(const torch::Tensor& means, const torch::Tensor& covars, const torch::Tensor& opacities,
                 const torch::Tensor& viewmats, const torch::Tensor& Ks) {
  const auto dtype = means.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  check_input(means, "means", dtype);
  check_input(covars, "covars", dtype);
  check_input(opacities, "opacities", dtype);
  check_input(viewmats, "viewmats", dtype);
  check_input(Ks, "Ks", dtype);
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3, "means must be [N, 3]");
  const int64_t n = means.size(0), c = viewmats.size(0);
  TORCH_CHECK(n < std::numeric_limits<int32_t>::max(), "too many Gaussians");
  TORCH_CHECK(opacities.numel() == n, "opacities must be [N]");
  TORCH_CHECK(viewmats.dim() == 3 && viewmats.size(1) == 4 && viewmats.size(2) == 4, "viewmats must be [C, 4, 4]");
  TORCH_CHECK(Ks.dim() == 3 && Ks.size(0) == c && Ks.size(1) == 3 && Ks.size(2) == 3, "Ks must be [C, 3, 3]");
  if (covars.dim() == 3 && covars.size(0) == n && covars.size(1) == 3 && covars.size(2) == 3) return 9;
  TORCH_CHECK(covars.dim() == 2 && covars.size(0) == n && covars.size(1) == 6, "covars must be [N, 3, 3] or [N, 6]");
  return 6;
}

template <typename T>
std::vector<Camera<T>> make_cameras(const torch::Tensor& viewmats, const torch::Tensor& Ks, int64_t width,
                                    int64_t height) {
  std::vector<Camera<T>> cams;
  for (int64_t c = 0; c < viewmats.size(0); ++c)
    cams.emplace_back(viewmats.data_ptr<T>() + 16 * c, Ks.data_ptr<T>() + 9 * c, width, height);
  return cams;
}


// ---- View-dependent colours from spherical harmonics (degree 0-3) ----------------------------------
// splat/render/_sh.py's basis (3DGS / gsplat order and signs) and sh_to_color: colour =
// max(sum_k basis_k(dir) coeff_k + 0.5, 0), dir = (mean - camera centre) / max(|mean - centre|, 1e-12),
// centre = -R^T t. Gradients to the coefficients, the means and, through the centre, viewmats [C, 4, 4].

constexpr int kMaxShDegree = 3;
const double kPi = 3.14159265358979323846;
const double kC0 = 0.5 / std::sqrt(kPi);
const double kC1 = std::sqrt(3.0 / (4.0 * kPi));
const double kC2[5] = {0.5 * std::sqrt(15.0 / kPi), 0.5 * std::sqrt(15.0 / kPi), 0.25 * std::sqrt(5.0 / kPi),
                       0.5 * std::sqrt(15.0 / kPi), 0.25 * std::sqrt(15.0 / kPi)};
const double kC3[7] = {0.25 * std::sqrt(35.0 / (2.0 * kPi)), 0.5 * std::sqrt(105.0 / kPi),
                       0.25 * std::sqrt(21.0 / (2.0 * kPi)), 0.25 * std::sqrt(7.0 / kPi),
                       0.25 * std::sqrt(21.0 / (2.0 * kPi)), 0.25 * std::sqrt(105.0 / kPi),
                       0.25 * std::sqrt(35.0 / (2.0 * kPi))};

// Basis values at the unit direction (x, y, z), written as _sh.sh_basis writes them.
template <typename T>
inline void sh_basis(int degree, T x, T y, T z, T* b) {
  b[0] = T(kC0);
  if (degree < 1) return;
  b[1] = T(-kC1) * y;
  b[2] = T(kC1) * z;
  b[3] = T(-kC1) * x;
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z;
  b[4] = T(kC2[0]) * x * y;
  b[5] = T(-kC2[1]) * y * z;
  b[6] = T(kC2[2]) * (T(3) * zz - T(1));
  b[7] = T(-kC2[3]) * x * z;
  b[8] = T(kC2[4]) * (xx - yy);
  if (degree < 3) return;
  b[9] = T(-kC3[0]) * y * (T(3) * xx - yy);
  b[10] = T(kC3[1]) * x * y * z;
  b[11] = T(-kC3[2]) * y * (T(5) * zz - T(1));
  b[12] = T(kC3[3]) * z * (T(5) * zz - T(3));
  b[13] = T(-kC3[4]) * x * (T(5) * zz - T(1));
  b[14] = T(kC3[5]) * z * (xx - yy);
  b[15] = T(-kC3[6]) * x * (xx - T(3) * yy);
}

// g = sum_k w_k d basis_k / d(x, y, z).
template <typename T>
inline void sh_basis_grad(int degree, T x, T y, T z, const T* w, T g[3]) {
  g[0] = g[1] = g[2] = T(0);
  if (degree < 1) return;
  g[0] -= T(kC1) * w[3];
  g[1] -= T(kC1) * w[1];
  g[2] += T(kC1) * w[2];
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z;
  g[0] += T(kC2[0]) * y * w[4] - T(kC2[3]) * z * w[7] + T(2 * kC2[4]) * x * w[8];
  g[1] += T(kC2[0]) * x * w[4] - T(kC2[1]) * z * w[5] - T(2 * kC2[4]) * y * w[8];
  g[2] += T(-kC2[1]) * y * w[5] + T(6 * kC2[2]) * z * w[6] - T(kC2[3]) * x * w[7];
  if (degree < 3) return;
  g[0] += T(-6 * kC3[0]) * x * y * w[9] + T(kC3[1]) * y * z * w[10] - T(kC3[4]) * (T(5) * zz - T(1)) * w[13] +
          T(2 * kC3[5]) * x * z * w[14] - T(3 * kC3[6]) * (xx - yy) * w[15];
  g[1] += T(-3 * kC3[0]) * (xx - yy) * w[9] + T(kC3[1]) * x * z * w[10] - T(kC3[2]) * (T(5) * zz - T(1)) * w[11] -
          T(2 * kC3[5]) * y * z * w[14] + T(6 * kC3[6]) * x * y * w[15];
  g[2] += T(kC3[1]) * x * y * w[10] - T(10 * kC3[2]) * y * z * w[11] + T(kC3[3]) * (T(15) * zz - T(3)) * w[12] -
          T(10 * kC3[4]) * x * z * w[13] + T(kC3[5]) * (xx - yy) * w[14];
}

// Camera centres -R^T t [C][3], summed as torch's R^T @ t.
template <typename T>
std::vector<std::array<T, 3>> camera_centres(const T* vm, int64_t n_cam) {
  std::vector<std::array<T, 3>> centres(n_cam);
  for (int64_t c = 0; c < n_cam; ++c) {
    const T* v = vm + 16 * c;
    for (int j = 0; j < 3; ++j) centres[c][j] = -(v[j] * v[3] + v[4 + j] * v[7] + v[8 + j] * v[11]);
  }
  return centres;
}

// The unit view direction of a mean seen from a centre: d = mean - centre, |d| and max(|d|, 1e-12).
template <typename T>
struct ViewDir {
  T d[3], len, norm, u[3];
  ViewDir(const T* m, const std::array<T, 3>& centre) {
    for (int j = 0; j < 3; ++j) d[j] = m[j] - centre[j];
    len = std::sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]);
    norm = len < T(1e-12) ? T(1e-12) : len;  // clamp_min keeps a NaN
    for (int j = 0; j < 3; ++j) u[j] = d[j] / norm;
  }
};

template <typename T>
void sh_forward_impl(int degree, const T* means, const T* coeffs, int64_t k_all, const T* vm, int64_t n_cam,
                     int64_t n, T* out) {
  const int nb = (degree + 1) * (degree + 1);
  const auto centres = camera_centres(vm, n_cam);
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  run_parallel(thread_count(n_chunks), [&](std::atomic<int64_t>& next) {
    for (int64_t ch = next++; ch < n_chunks; ch = next++) {
      for (int64_t g = ch * kChunk; g < std::min(n, (ch + 1) * kChunk); ++g) {
        const T* coef = coeffs + g * k_all * 3;
        for (int64_t c = 0; c < n_cam; ++c) {
          const ViewDir<T> dir(means + 3 * g, centres[c]);
          T b[16];
          sh_basis(degree, dir.u[0], dir.u[1], dir.u[2], b);
          T* o = out + 3 * (c * n + g);
          for (int k3 = 0; k3 < 3; ++k3) {
            T sum = b[0] * coef[k3];
            for (int k = 1; k < nb; ++k) sum += b[k] * coef[3 * k + k3];
            const T col = sum + T(0.5);
            o[k3] = col < T(0) ? T(0) : col;
          }
        }
      }
    }
  });
}

template <typename T>
void sh_backward_impl(int degree, const T* means, const T* coeffs, int64_t k_all, const T* vm, int64_t n_cam,
                      int64_t n, const T* v_colors, T* v_means, T* v_coeffs, double* v_centres) {
  const int nb = (degree + 1) * (degree + 1);
  const auto centres = camera_centres(vm, n_cam);
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(n_chunks * n_cam * 3), 0.0);
  run_parallel(thread_count(n_chunks), [&](std::atomic<int64_t>& next) {
    for (int64_t ch = next++; ch < n_chunks; ch = next++) {
      double* acc = part.data() + ch * n_cam * 3;
      for (int64_t g = ch * kChunk; g < std::min(n, (ch + 1) * kChunk); ++g) {
        const T* coef = coeffs + g * k_all * 3;
        T* v_coef = v_coeffs + g * k_all * 3;
        std::fill(v_coef, v_coef + k_all * 3, T(0));
        T v_m[3] = {0, 0, 0};
        for (int64_t c = 0; c < n_cam; ++c) {
          const T* v = v_colors + 3 * (c * n + g);
          if (v[0] == T(0) && v[1] == T(0) && v[2] == T(0)) continue;
          const ViewDir<T> dir(means + 3 * g, centres[c]);
          T b[16], w[16];
          sh_basis(degree, dir.u[0], dir.u[1], dir.u[2], b);
          T v_sum[3];
          for (int k3 = 0; k3 < 3; ++k3) {
            T sum = b[0] * coef[k3];
            for (int k = 1; k < nb; ++k) sum += b[k] * coef[3 * k + k3];
            v_sum[k3] = sum + T(0.5) >= T(0) ? v[k3] : T(0);  // clamp_min passes the gradient where >= 0
          }
          for (int k = 0; k < nb; ++k) {
            w[k] = T(0);
            for (int k3 = 0; k3 < 3; ++k3) {
              v_coef[3 * k + k3] += b[k] * v_sum[k3];
              w[k] += v_sum[k3] * coef[3 * k + k3];
            }
          }
          if (degree == 0) continue;  // a constant basis: no gradient to the direction
          T v_u[3];
          sh_basis_grad(degree, dir.u[0], dir.u[1], dir.u[2], w, v_u);
          // u = d / norm, norm = max(|d|, 1e-12): the |d| term only where |d| >= 1e-12
          T v_d[3];
          for (int j = 0; j < 3; ++j) v_d[j] = v_u[j] / dir.norm;
          if (dir.len >= T(1e-12)) {
            const T v_norm = -(v_u[0] * dir.d[0] + v_u[1] * dir.d[1] + v_u[2] * dir.d[2]) / (dir.norm * dir.norm);
            for (int j = 0; j < 3; ++j) v_d[j] += v_norm * dir.d[j] / dir.len;
          }
          for (int j = 0; j < 3; ++j) {
            v_m[j] += v_d[j];
            acc[3 * c + j] -= static_cast<double>(v_d[j]);
          }
        }
        for (int j = 0; j < 3; ++j) v_means[3 * g + j] = v_m[j];
      }
    }
  });
  for (int64_t ch = 0; ch < n_chunks; ++ch)
    for (int64_t i = 0; i < n_cam * 3; ++i) v_centres[i] += part[ch * n_cam * 3 + i];
}

void check_sh_inputs(int64_t degree, const torch::Tensor& means, const torch::Tensor& coeffs,
                     const torch::Tensor& viewmats) {
  const auto dtype = means.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  check_input(means, "means", dtype);
  check_input(coeffs, "coeffs", dtype);
  check_input(viewmats, "viewmats", dtype);
  TORCH_CHECK(degree >= 0 && degree <= kMaxShDegree, "SH degree must be in 0..", kMaxShDegree);
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3, "means must be [N, 3]");
  TORCH_CHECK(coeffs.dim() == 3 && coeffs.size(0) == means.size(0) && coeffs.size(2) == 3 &&
                  coeffs.size(1) >= (degree + 1) * (degree + 1),
              "coeffs must be [N, K >= (degree + 1)^2, 3]");
  TORCH_CHECK(viewmats.dim() == 3 && viewmats.size(1) == 4 && viewmats.size(2) == 4, "viewmats must be [C, 4, 4]");
}

// ---- Procedural pushforward: canonical Gaussians to world (splat/gaussians/model.py) --------------
// World Gaussian m copies canonical Gaussian g = src[m] into the part p = part[m] (a row of the stacked
// per-part maps A [P, 3, 3], t [P, 3]) as ProceduralGaussians.pushforward's torch code does:
//   means = A mu + t,  factors F = A L,  covars = F F^T,  L = R(quat) diag(exp(log_scale)),
//   opacities = sigmoid(logit),  sh = [sh0 + residuals[g, min(copy[m], C - 1)], shN]
// with R as splat.maths.quats_to_rotmats gives it (the quaternion normalised first, wxyz). As torch ops
// (gathers of [M, 3, 3] rows, batched matmuls, index_put scatter-adds in the backward) this costs ~7 ms
// forward and ~11 ms backward for the chair's ~40k world Gaussians, every joint training step; here
// ~1 ms forward and ~2 ms backward (2 threads).
//
// The forward runs over chunks of world Gaussians. The backward runs over chunks of canonical Gaussians:
// each gathers the gradients of its world copies (found by a counting sort of src, so in ascending world
// order), so the rotation, scales and sigmoid are differentiated once per canonical Gaussian and every
// canonical gradient is written by one thread. The per-part gradients of A and t are summed in double per
// chunk, then over the chunks in order: everything is bitwise the same for any thread count.

// R(quat) and L = R diag(exp(log_scale)) of one canonical Gaussian, written as quats_to_rotmats writes them.
template <typename T>
struct CanonicalFactor {
  T q[4], norm, s[3], R[3][3], L[3][3];
  CanonicalFactor(const T* quat, const T* log_scale) {
    norm = std::sqrt(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] + quat[3] * quat[3]);
    for (int i = 0; i < 4; ++i) q[i] = quat[i] / norm;
    const T w = q[0], x = q[1], y = q[2], z = q[3];
    R[0][0] = T(1) - T(2) * (y * y + z * z);
    R[0][1] = T(2) * (x * y - w * z);
    R[0][2] = T(2) * (x * z + w * y);
    R[1][0] = T(2) * (x * y + w * z);
    R[1][1] = T(1) - T(2) * (x * x + z * z);
    R[1][2] = T(2) * (y * z - w * x);
    R[2][0] = T(2) * (x * z - w * y);
    R[2][1] = T(2) * (y * z + w * x);
    R[2][2] = T(1) - T(2) * (x * x + y * y);
    for (int j = 0; j < 3; ++j) s[j] = std::exp(log_scale[j]);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) L[i][j] = R[i][j] * s[j];
  }

  // Gradients w.r.t. the raw quaternion [4] and log_scale [3] given dLoss/dL.
  void backward(const T v_L[3][3], T v_quat[4], T v_log_scale[3]) const {
    T v_R[3][3];
    for (int j = 0; j < 3; ++j) {
      T v_s = 0;
      for (int i = 0; i < 3; ++i) {
        v_R[i][j] = v_L[i][j] * s[j];
        v_s += v_L[i][j] * R[i][j];
      }
      v_log_scale[j] = v_s * s[j];
    }
    const T w = q[0], x = q[1], y = q[2], z = q[3];
    // d R / d (w, x, y, z) of the normalised quaternion, entry by entry
    const T vw = T(2) * (-z * v_R[0][1] + y * v_R[0][2] + z * v_R[1][0] - x * v_R[1][2] - y * v_R[2][0] +
                         x * v_R[2][1]);
    const T vx = T(2) * (-T(2) * x * (v_R[1][1] + v_R[2][2]) + y * (v_R[0][1] + v_R[1][0]) +
                         z * (v_R[0][2] + v_R[2][0]) + w * (v_R[2][1] - v_R[1][2]));
    const T vy = T(2) * (-T(2) * y * (v_R[0][0] + v_R[2][2]) + x * (v_R[0][1] + v_R[1][0]) +
                         z * (v_R[1][2] + v_R[2][1]) + w * (v_R[0][2] - v_R[2][0]));
    const T vz = T(2) * (-T(2) * z * (v_R[0][0] + v_R[1][1]) + x * (v_R[0][2] + v_R[2][0]) +
                         y * (v_R[1][2] + v_R[2][1]) + w * (v_R[1][0] - v_R[0][1]));
    // q = quat / |quat|: project out the radial part
    const T v_q[4] = {vw, vx, vy, vz};
    const T dot = w * vw + x * vx + y * vy + z * vz;
    for (int i = 0; i < 4; ++i) v_quat[i] = (v_q[i] - q[i] * dot) / norm;
  }
};

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// The canonical parameters (rows of N Gaussians) and the world Gaussians' indices [M].
template <typename T>
struct PushInputs {
  const T *means, *quats, *log_scales, *logits, *sh0, *shN, *res;  // res null: no per-copy residuals
  int64_t n, k_rest, n_res;  // Gaussians, rows of shN, residual columns C
  const int64_t *src, *part, *copy;
  int64_t m;
  const T *A, *t;  // [P, 3, 3], [P, 3]
  int64_t n_parts;
};

template <typename T>
struct PushOut {
  T *means, *covars, *factors, *opac, *sh;
};

template <typename T>
void push_forward_impl(const PushInputs<T>& in, PushOut<T> out) {
  const int64_t k_all = 1 + in.k_rest;
  const int64_t n_chunks = (in.m + kChunk - 1) / kChunk;
  run_parallel(thread_count(n_chunks), [&](std::atomic<int64_t>& next) {
    for (int64_t ch = next++; ch < n_chunks; ch = next++) {
      for (int64_t m = ch * kChunk; m < std::min(in.m, (ch + 1) * kChunk); ++m) {
        const int64_t g = in.src[m], p = in.part[m];
        const CanonicalFactor<T> c(in.quats + 4 * g, in.log_scales + 3 * g);
        const T* a = in.A + 9 * p;
        const T* mu = in.means + 3 * g;
        T F[3][3];
        for (int i = 0; i < 3; ++i) {
          out.means[3 * m + i] = (a[3 * i] * mu[0] + a[3 * i + 1] * mu[1] + a[3 * i + 2] * mu[2]) + in.t[3 * p + i];
          for (int j = 0; j < 3; ++j)
            F[i][j] = a[3 * i] * c.L[0][j] + a[3 * i + 1] * c.L[1][j] + a[3 * i + 2] * c.L[2][j];
        }
        T* f = out.factors + 9 * m;
        T* cov = out.covars + 9 * m;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) {
            f[3 * i + j] = F[i][j];
            cov[3 * i + j] = F[i][0] * F[j][0] + F[i][1] * F[j][1] + F[i][2] * F[j][2];
          }
        out.opac[m] = sigmoid(in.logits[g]);
        T* sh = out.sh + 3 * k_all * m;
        const T* dc = in.sh0 + 3 * g;
        if (in.res) {
          const T* r = in.res + 3 * (g * in.n_res + std::min(in.copy[m], in.n_res - 1));
          for (int k = 0; k < 3; ++k) sh[k] = dc[k] + r[k];
        } else {
          for (int k = 0; k < 3; ++k) sh[k] = dc[k];
        }
        std::copy(in.shN + 3 * in.k_rest * g, in.shN + 3 * in.k_rest * (g + 1), sh + 3);
      }
    }
  });
}

// Gradients of the world outputs ([M, ...] each, null when absent: zero).
template <typename T>
struct PushUpstream {
  const T *means, *covars, *factors, *opac, *sh;
};

template <typename T>
struct PushGrads {
  T *means, *quats, *log_scales, *logits, *sh0, *shN, *res;
  double* parts;  // [P, 12]: A row-major, then t
};

template <typename T>
void push_backward_impl(const PushInputs<T>& in, const PushUpstream<T>& up, PushGrads<T> out) {
  const int64_t n = in.n, k_all = 1 + in.k_rest;
  // counting sort of src: the world copies of g are order[start[g] .. start[g + 1]), ascending
  std::vector<int64_t> start(static_cast<size_t>(n + 1), 0), order(static_cast<size_t>(in.m));
  for (int64_t m = 0; m < in.m; ++m) ++start[in.src[m] + 1];
  for (int64_t g = 0; g < n; ++g) start[g + 1] += start[g];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t m = 0; m < in.m; ++m) order[fill[in.src[m]]++] = m;
  }
  const bool geometric = up.means || up.covars || up.factors;
  const int64_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part_acc(static_cast<size_t>(n_chunks * in.n_parts * 12), 0.0);
  run_parallel(thread_count(n_chunks), [&](std::atomic<int64_t>& next) {
    for (int64_t ch = next++; ch < n_chunks; ch = next++) {
      double* acc = part_acc.data() + ch * in.n_parts * 12;
      for (int64_t g = ch * kChunk; g < std::min(n, (ch + 1) * kChunk); ++g) {
        T* v_dc = out.sh0 + 3 * g;
        T* v_rest = out.shN + 3 * in.k_rest * g;
        T* v_res = out.res ? out.res + 3 * in.n_res * g : nullptr;
        std::fill(v_dc, v_dc + 3, T(0));
        std::fill(v_rest, v_rest + 3 * in.k_rest, T(0));
        if (v_res) std::fill(v_res, v_res + 3 * in.n_res, T(0));
        const CanonicalFactor<T> c(in.quats + 4 * g, in.log_scales + 3 * g);
        const T* mu = in.means + 3 * g;
        T v_mu[3] = {0, 0, 0}, v_o = 0;
        T v_L[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
        for (int64_t i_copy = start[g]; i_copy < start[g + 1]; ++i_copy) {
          const int64_t m = order[i_copy], p = in.part[m];
          if (up.opac) v_o += up.opac[m];
          if (up.sh) {
            const T* vs = up.sh + 3 * k_all * m;
            for (int k = 0; k < 3; ++k) v_dc[k] += vs[k];
            for (int64_t k = 0; k < 3 * in.k_rest; ++k) v_rest[k] += vs[3 + k];
            if (v_res) {
              T* r = v_res + 3 * std::min(in.copy[m], in.n_res - 1);
              for (int k = 0; k < 3; ++k) r[k] += vs[k];
            }
          }
          if (!geometric) continue;
          const T* a = in.A + 9 * p;
          T v_mw[3] = {0, 0, 0};
          T v_F[3][3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
          if (up.means)
            for (int i = 0; i < 3; ++i) v_mw[i] = up.means[3 * m + i];
          if (up.factors)
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j) v_F[i][j] = up.factors[9 * m + 3 * i + j];
          if (up.covars) {  // covars = F F^T: dF = (G + G^T) F
            const T* G = up.covars + 9 * m;
            T F[3][3], S[3][3];
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j) {
                F[i][j] = a[3 * i] * c.L[0][j] + a[3 * i + 1] * c.L[1][j] + a[3 * i + 2] * c.L[2][j];
                S[i][j] = G[3 * i + j] + G[3 * j + i];
              }
            for (int i = 0; i < 3; ++i)
              for (int k = 0; k < 3; ++k) v_F[i][k] += S[i][0] * F[0][k] + S[i][1] * F[1][k] + S[i][2] * F[2][k];
          }
          // means = A mu + t, F = A L
          double* ap = acc + 12 * p;
          for (int i = 0; i < 3; ++i) {
            for (int k = 0; k < 3; ++k)
              ap[3 * i + k] += static_cast<double>(v_F[i][0] * c.L[k][0] + v_F[i][1] * c.L[k][1] +
                                                   v_F[i][2] * c.L[k][2] + v_mw[i] * mu[k]);
            ap[9 + i] += static_cast<double>(v_mw[i]);
          }
          for (int k = 0; k < 3; ++k) {
            v_mu[k] += a[k] * v_mw[0] + a[3 + k] * v_mw[1] + a[6 + k] * v_mw[2];
            for (int j = 0; j < 3; ++j) v_L[k][j] += a[k] * v_F[0][j] + a[3 + k] * v_F[1][j] + a[6 + k] * v_F[2][j];
          }
        }
        for (int k = 0; k < 3; ++k) out.means[3 * g + k] = v_mu[k];
        const T s = sigmoid(in.logits[g]);
        out.logits[g] = v_o * (T(1) - s) * s;  // torch's sigmoid backward
        c.backward(v_L, out.quats + 4 * g, out.log_scales + 3 * g);
      }
    }
  });
  for (int64_t ch = 0; ch < n_chunks; ++ch)
    for (int64_t i = 0; i < in.n_parts * 12; ++i) out.parts[i] += part_acc[ch * in.n_parts * 12 + i];
}

// Checks the pushforward's geometric inputs and the index ranges and gathers their pointers (the colour
// pointers stay null: see with_colours). k_rest: rows of shN; n_res: residual columns (0: none).
template <typename T>
PushInputs<T> push_inputs(const torch::Tensor& src, const torch::Tensor& part, const torch::Tensor& copy,
                          const torch::Tensor& A, const torch::Tensor& t, const torch::Tensor& means,
                          const torch::Tensor& quats, const torch::Tensor& log_scales, const torch::Tensor& logits,
                          int64_t k_rest, int64_t n_res) {
  const auto dtype = means.scalar_type();
  for (const auto* x : {&A, &t, &means, &quats, &log_scales, &logits}) check_input(*x, "pushforward input", dtype);
  for (const auto* x : {&src, &part, &copy}) check_input(*x, "pushforward index", at::kLong);
  const int64_t n = means.size(0), m = src.numel(), n_parts = A.size(0);
  TORCH_CHECK(means.dim() == 2 && means.size(1) == 3, "means must be [N, 3]");
  TORCH_CHECK(quats.dim() == 2 && quats.size(0) == n && quats.size(1) == 4, "quats must be [N, 4]");
  TORCH_CHECK(log_scales.dim() == 2 && log_scales.size(0) == n && log_scales.size(1) == 3,
              "log_scales must be [N, 3]");
  TORCH_CHECK(logits.dim() == 1 && logits.size(0) == n, "opacity_logits must be [N]");
  TORCH_CHECK(A.dim() == 3 && A.size(1) == 3 && A.size(2) == 3, "A must be [P, 3, 3]");
  TORCH_CHECK(t.dim() == 2 && t.size(0) == n_parts && t.size(1) == 3, "t must be [P, 3]");
  TORCH_CHECK(src.dim() == 1 && part.sizes() == src.sizes() && copy.sizes() == src.sizes(),
              "src, part and copy must be [M]");
  TORCH_CHECK(k_rest >= 0 && n_res >= 0, "negative SH or residual count");
  const int64_t *s = src.data_ptr<int64_t>(), *p = part.data_ptr<int64_t>(), *c = copy.data_ptr<int64_t>();
  for (int64_t i = 0; i < m; ++i)
    TORCH_CHECK(s[i] >= 0 && s[i] < n && p[i] >= 0 && p[i] < n_parts && c[i] >= 0,
                "pushforward index out of range at world Gaussian ", i);
  return {means.data_ptr<T>(), quats.data_ptr<T>(), log_scales.data_ptr<T>(), logits.data_ptr<T>(), nullptr, nullptr,
          nullptr, n, k_rest, n_res, s, p, c, m, A.data_ptr<T>(), t.data_ptr<T>(), n_parts};
}

// The forward's inputs: push_inputs plus the checked colours sh0 [N, 1, 3], shN [N, K - 1, 3] and
// residuals [N, C >= 1, 3] (optional).
template <typename T>
PushInputs<T> with_colours(PushInputs<T> in, const torch::Tensor& sh0, const torch::Tensor& shN,
                           const std::optional<torch::Tensor>& residuals) {
  const auto dtype = sh0.scalar_type();
  check_input(sh0, "sh0", dtype);
  check_input(shN, "shN", dtype);
  TORCH_CHECK(sh0.dim() == 3 && sh0.size(0) == in.n && sh0.size(1) == 1 && sh0.size(2) == 3, "sh0 must be [N, 1, 3]");
  TORCH_CHECK(shN.dim() == 3 && shN.size(0) == in.n && shN.size(1) == in.k_rest && shN.size(2) == 3,
              "shN must be [N, K - 1, 3]");
  in.sh0 = sh0.data_ptr<T>();
  in.shN = shN.data_ptr<T>();
  if (residuals) {
    check_input(*residuals, "residuals", dtype);
    TORCH_CHECK(residuals->dim() == 3 && residuals->size(0) == in.n && residuals->size(1) == in.n_res &&
                    in.n_res >= 1 && residuals->size(2) == 3,
                "residuals must be [N, C >= 1, 3]");
    in.res = residuals->data_ptr<T>();
  }
  return in;
}

}  // namespace

// Returns means2d [C, N, 2], conics [C, N, 3], depths [C, N], radii [C, N, 2] int32, opacities [C, N]
// (times the compensation when antialiased), compensations [C, N] and the input counts int64 [4]:
// rows with a NaN/Inf (in means, opacities, [N, 3, 3] covars or a row of any tensor in `checks`, each
// [N, k]), finite rows with opacity outside [0, 1], finite rows whose [N, 3, 3] covariance is not
// PSD, and the first of those (-1: none).
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor covars, torch::Tensor opacities,
                                           torch::Tensor viewmats, torch::Tensor Ks, std::vector<torch::Tensor> checks,
                                           int64_t width, int64_t height, double near_plane, double far_plane,
                                           double eps2d, bool antialiased) {
  const int layout = check_inputs(means, covars, opacities, viewmats, Ks);
  const auto dtype = means.scalar_type();
  const int64_t n = means.size(0), n_cam = viewmats.size(0);
  for (const auto& chk : checks) {
    check_input(chk, "checked tensor", dtype);
    TORCH_CHECK(chk.dim() == 2 && chk.size(0) == n, "checked tensors must be [N, k]");
  }
  auto opts = means.options();
  auto means2d = torch::empty({n_cam, n, 2}, opts), conics = torch::empty({n_cam, n, 3}, opts);
  auto depths = torch::empty({n_cam, n}, opts), opac = torch::empty({n_cam, n}, opts);
  auto comp = torch::empty({n_cam, n}, opts);
  auto radii = torch::empty({n_cam, n, 2}, opts.dtype(at::kInt));
  auto stats = torch::empty({4}, opts.dtype(at::kLong));
  const Settings st{width, height, near_plane, far_plane, eps2d, antialiased};
  Counts counts;
  AT_DISPATCH_FLOATING_TYPES(dtype, "project_forward", [&] {
    std::vector<std::pair<const scalar_t*, int64_t>> rows;
    for (const auto& chk : checks) rows.emplace_back(chk.data_ptr<scalar_t>(), chk.size(1));
    ForwardOut<scalar_t> out{means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
                             opac.data_ptr<scalar_t>(), comp.data_ptr<scalar_t>(), radii.data_ptr<int32_t>()};
    forward_impl<scalar_t>(means.data_ptr<scalar_t>(), covars.data_ptr<scalar_t>(), layout,
                           opacities.data_ptr<scalar_t>(), make_cameras<scalar_t>(viewmats, Ks, width, height), rows, n,
                           st, out, counts);
  });
  int64_t* s = stats.data_ptr<int64_t>();
  s[0] = counts.nonfinite;
  s[1] = counts.bad_opacity;
  s[2] = counts.bad_psd;
  s[3] = counts.first_bad_psd;
  return {means2d, conics, depths, radii, opac, comp, stats};
}

// Gradients w.r.t. means [N, 3], covars (the input's shape), opacities [N] and viewmats [C, 4, 4]
// given the gradients of the forward's differentiable outputs (absent ones are zero).
std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor covars, torch::Tensor opacities,
                                            torch::Tensor viewmats, torch::Tensor Ks,
                                            std::optional<torch::Tensor> v_means2d, std::optional<torch::Tensor> v_conics,
                                            std::optional<torch::Tensor> v_depths, std::optional<torch::Tensor> v_opac,
                                            std::optional<torch::Tensor> v_comp, int64_t width, int64_t height,
                                            double eps2d, bool antialiased) {
  const int layout = check_inputs(means, covars, opacities, viewmats, Ks);
  const auto dtype = means.scalar_type();
  const int64_t n = means.size(0), n_cam = viewmats.size(0);
  auto checked = [&](const std::optional<torch::Tensor>& x, const char* name, int64_t per) {
    if (!x) return;
    check_input(*x, name, dtype);
    TORCH_CHECK(x->numel() == n_cam * n * per, name, " has the wrong size");
  };
  checked(v_means2d, "v_means2d", 2);
  checked(v_conics, "v_conics", 3);
  checked(v_depths, "v_depths", 1);
  checked(v_opac, "v_opacities", 1);
  checked(v_comp, "v_compensations", 1);
  auto opts = means.options();
  auto g_means = torch::empty_like(means), g_cov = torch::empty_like(covars), g_opac = torch::empty_like(opacities);
  auto g_vm = torch::empty({n_cam, 4, 4}, opts);
  std::vector<double> vm(static_cast<size_t>(n_cam * kVmGrad), 0.0);
  const Settings st{width, height, 0.0, 0.0, eps2d, antialiased};
  AT_DISPATCH_FLOATING_TYPES(dtype, "project_backward", [&] {
    auto ptr = [](const std::optional<torch::Tensor>& x) -> const scalar_t* {
      return x ? x->data_ptr<scalar_t>() : nullptr;
    };
    Upstream<scalar_t> up{ptr(v_means2d), ptr(v_conics), ptr(v_depths), ptr(v_opac), ptr(v_comp)};
    Grads<scalar_t> out{g_means.data_ptr<scalar_t>(), g_cov.data_ptr<scalar_t>(), g_opac.data_ptr<scalar_t>(),
                        vm.data()};
    backward_impl<scalar_t>(means.data_ptr<scalar_t>(), covars.data_ptr<scalar_t>(), layout,
                            opacities.data_ptr<scalar_t>(), make_cameras<scalar_t>(viewmats, Ks, width, height), n, st,
                            up, out);
    scalar_t* dst = g_vm.data_ptr<scalar_t>();
    for (int64_t c = 0; c < n_cam; ++c)
      for (int i = 0; i < 16; ++i) dst[16 * c + i] = i < kVmGrad ? static_cast<scalar_t>(vm[c * kVmGrad + i]) : 0;
  });
  return {g_means, g_cov, g_opac, g_vm};
}

// Colours [C, N, 3] of SH coefficients [N, K, 3] (degree 0-3) seen from each camera's centre.
torch::Tensor sh_forward(int64_t degree, torch::Tensor means, torch::Tensor coeffs, torch::Tensor viewmats) {
  check_sh_inputs(degree, means, coeffs, viewmats);
  const int64_t n = means.size(0), n_cam = viewmats.size(0);
  auto out = torch::empty({n_cam, n, 3}, means.options());
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "sh_forward", [&] {
    sh_forward_impl<scalar_t>(static_cast<int>(degree), means.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(),
                              coeffs.size(1), viewmats.data_ptr<scalar_t>(), n_cam, n, out.data_ptr<scalar_t>());
  });
  return out;
}

// Gradients w.r.t. means [N, 3], coeffs [N, K, 3] (zero beyond (degree + 1)^2) and viewmats [C, 4, 4]
// given the gradient of the colours [C, N, 3].
std::vector<torch::Tensor> sh_backward(int64_t degree, torch::Tensor means, torch::Tensor coeffs,
                                       torch::Tensor viewmats, torch::Tensor v_colors) {
  check_sh_inputs(degree, means, coeffs, viewmats);
  const auto dtype = means.scalar_type();
  const int64_t n = means.size(0), n_cam = viewmats.size(0);
  check_input(v_colors, "v_colors", dtype);
  TORCH_CHECK(v_colors.numel() == n_cam * n * 3, "v_colors must be [C, N, 3]");
  auto g_means = torch::empty_like(means), g_coeffs = torch::empty_like(coeffs);
  auto g_vm = torch::empty({n_cam, 4, 4}, means.options());
  std::vector<double> v_centres(static_cast<size_t>(n_cam * 3), 0.0);
  AT_DISPATCH_FLOATING_TYPES(dtype, "sh_backward", [&] {
    const scalar_t* vm = viewmats.data_ptr<scalar_t>();
    sh_backward_impl<scalar_t>(static_cast<int>(degree), means.data_ptr<scalar_t>(), coeffs.data_ptr<scalar_t>(),
                               coeffs.size(1), vm, n_cam, n, v_colors.data_ptr<scalar_t>(),
                               g_means.data_ptr<scalar_t>(), g_coeffs.data_ptr<scalar_t>(), v_centres.data());
    // centre_j = -sum_i R_ij t_i
    scalar_t* dst = g_vm.data_ptr<scalar_t>();
    for (int64_t c = 0; c < n_cam; ++c) {
      const scalar_t* v = vm + 16 * c;
      const double* vc = v_centres.data() + 3 * c;
      for (int i = 0; i < 16; ++i) dst[16 * c + i] = 0;
      for (int i = 0; i < 3; ++i) {
        double vt = 0;
        for (int j = 0; j < 3; ++j) {
          dst[16 * c + 4 * i + j] = static_cast<scalar_t>(-static_cast<double>(v[4 * i + 3]) * vc[j]);
          vt -= static_cast<double>(v[4 * i + j]) * vc[j];
        }
        dst[16 * c + 4 * i + 3] = static_cast<scalar_t>(vt);
      }
    }
  });
  return {g_means, g_coeffs, g_vm};
}

// World Gaussians of the canonical parameters: means [M, 3], covars [M, 3, 3], factors [M, 3, 3],
// opacities [M] and SH coefficients [M, K, 3] (see "Procedural pushforward" above).
std::vector<torch::Tensor> pushforward_forward(torch::Tensor src, torch::Tensor part, torch::Tensor copy,
                                               torch::Tensor A, torch::Tensor t, torch::Tensor means,
                                               torch::Tensor quats, torch::Tensor log_scales,
                                               torch::Tensor opacity_logits, torch::Tensor sh0, torch::Tensor shN,
                                               std::optional<torch::Tensor> residuals) {
  const auto dtype = means.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  TORCH_CHECK(shN.dim() == 3 && (!residuals || residuals->dim() == 3), "shN and residuals must be 3-d");
  const int64_t m = src.numel(), k_rest = shN.size(1), n_res = residuals ? residuals->size(1) : 0;
  auto opts = means.options();
  auto w_means = torch::empty({m, 3}, opts), covars = torch::empty({m, 3, 3}, opts);
  auto factors = torch::empty({m, 3, 3}, opts), opac = torch::empty({m}, opts);
  auto sh = torch::empty({m, 1 + k_rest, 3}, opts);
  AT_DISPATCH_FLOATING_TYPES(dtype, "pushforward_forward", [&] {
    const auto in = with_colours(push_inputs<scalar_t>(src, part, copy, A, t, means, quats, log_scales,
                                                       opacity_logits, k_rest, n_res),
                                 sh0, shN, residuals);
    push_forward_impl<scalar_t>(in, {w_means.data_ptr<scalar_t>(), covars.data_ptr<scalar_t>(),
                                     factors.data_ptr<scalar_t>(), opac.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>()});
  });
  return {w_means, covars, factors, opac, sh};
}

// Gradients w.r.t. means, quats, log_scales, opacity_logits, sh0 [N, 1, 3], shN [N, k_rest, 3],
// residuals [N, n_res, 3] (undefined when n_res is 0: none), A and t given those of the forward's
// outputs (absent ones are zero). The colours' values are not needed, only their sizes.
std::vector<torch::Tensor> pushforward_backward(
    torch::Tensor src, torch::Tensor part, torch::Tensor copy, torch::Tensor A, torch::Tensor t, torch::Tensor means,
    torch::Tensor quats, torch::Tensor log_scales, torch::Tensor opacity_logits, int64_t k_rest, int64_t n_res,
    std::optional<torch::Tensor> v_means, std::optional<torch::Tensor> v_covars, std::optional<torch::Tensor> v_factors,
    std::optional<torch::Tensor> v_opac, std::optional<torch::Tensor> v_sh) {
  const auto dtype = means.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  const int64_t m = src.numel(), n = means.size(0), n_parts = A.size(0);
  auto checked = [&](const std::optional<torch::Tensor>& x, const char* name, int64_t per) {
    if (!x) return;
    check_input(*x, name, dtype);
    TORCH_CHECK(x->numel() == m * per, name, " has the wrong size");
  };
  checked(v_means, "v_means", 3);
  checked(v_covars, "v_covars", 9);
  checked(v_factors, "v_factors", 9);
  checked(v_opac, "v_opacities", 1);
  checked(v_sh, "v_sh", 3 * (1 + k_rest));
  auto opts = means.options();
  auto g_means = torch::empty_like(means), g_quats = torch::empty_like(quats);
  auto g_log_scales = torch::empty_like(log_scales), g_logits = torch::empty_like(opacity_logits);
  auto g_sh0 = torch::empty({n, 1, 3}, opts), g_shN = torch::empty({n, k_rest, 3}, opts);
  torch::Tensor g_res = n_res ? torch::empty({n, n_res, 3}, opts) : torch::Tensor();
  auto g_A = torch::empty_like(A), g_t = torch::empty_like(t);
  std::vector<double> parts(static_cast<size_t>(n_parts * 12), 0.0);
  AT_DISPATCH_FLOATING_TYPES(dtype, "pushforward_backward", [&] {
    const auto in = push_inputs<scalar_t>(src, part, copy, A, t, means, quats, log_scales, opacity_logits, k_rest,
                                          n_res);
    auto ptr = [](const std::optional<torch::Tensor>& x) -> const scalar_t* {
      return x ? x->data_ptr<scalar_t>() : nullptr;
    };
    const PushUpstream<scalar_t> up{ptr(v_means), ptr(v_covars), ptr(v_factors), ptr(v_opac), ptr(v_sh)};
    push_backward_impl<scalar_t>(in, up, {g_means.data_ptr<scalar_t>(), g_quats.data_ptr<scalar_t>(),
                                          g_log_scales.data_ptr<scalar_t>(), g_logits.data_ptr<scalar_t>(),
                                          g_sh0.data_ptr<scalar_t>(), g_shN.data_ptr<scalar_t>(),
                                          n_res ? g_res.data_ptr<scalar_t>() : nullptr, parts.data()});
    scalar_t *dA = g_A.data_ptr<scalar_t>(), *dt = g_t.data_ptr<scalar_t>();
    for (int64_t p = 0; p < n_parts; ++p) {
      for (int i = 0; i < 9; ++i) dA[9 * p + i] = static_cast<scalar_t>(parts[12 * p + i]);
      for (int i = 0; i < 3; ++i) dt[3 * p + i] = static_cast<scalar_t>(parts[12 * p + 9 + i]);
    }
  });
  return {g_means, g_quats, g_log_scales, g_logits, g_sh0, g_shN, g_res, g_A, g_t};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &project_forward, "fused EWA projection and input checks (C cameras)");
  m.def("backward", &project_backward, "fused EWA projection backward");
  m.def("sh_forward", &sh_forward, "colours from spherical harmonics (degree 0-3, C cameras)");
  m.def("sh_backward", &sh_backward, "colours from spherical harmonics backward");
  m.def("pushforward_forward", &pushforward_forward, "procedural Gaussians: canonical to world");
  m.def("pushforward_backward", &pushforward_backward, "procedural Gaussians: canonical to world, backward");
}
