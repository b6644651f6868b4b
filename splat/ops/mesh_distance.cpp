// Nearest active triangle of each point, for batches of meshes sharing one face list (CPU).
//
// For every batch element the active triangles are packed once into structure-of-arrays form with the
// quantities the distance needs (corner a, edges ab, ac, bc, inverse squared edge lengths, unit normal,
// barycentric denominators). Each point then gets its squared distance to every packed triangle in a
// branch-free loop the compiler vectorises (-O3 -march=native): the distance is the plane distance when
// the point projects inside the triangle, else the smallest of the three edge-segment distances; the
// index of the first minimum is returned. Work is split into (element, block of points) items pulled from
// an atomic counter by plain std::threads (the caller is one of them), as in the rasterizer, because
// OpenMP's spin-waiting workers hurt on small, busy machines.
//
// closest_weights gives, for points each paired with one triangle, the barycentric weights of the
// closest point (scalar code per point, threads over blocks of points).
//
// See splat/ops/mesh_distance.py for the convention; the differentiable distance is computed in torch.

#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

namespace {

template <typename F>
void run_parallel(int n_threads, F body) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back([&body, &next] { body(next); });
  body(next);
  for (auto& t : pool) t.join();
}

template <typename T>
struct Packed {
  // One entry per active triangle of one batch element, in increasing face order.
  std::vector<int64_t> face;
  std::vector<T> ax, ay, az, abx, aby, abz, acx, acy, acz, bx, by, bz, bcx, bcy, bcz;
  std::vector<T> inv_ab, inv_ac, inv_bc, nx, ny, nz, d00, d01, d11, inv_den;

  void reserve(size_t n) {
    for (auto* v : {&ax, &ay, &az, &abx, &aby, &abz, &acx, &acy, &acz, &bx, &by, &bz, &bcx, &bcy, &bcz,
                    &inv_ab, &inv_ac, &inv_bc, &nx, &ny, &nz, &d00, &d01, &d11, &inv_den})
      v->reserve(n);
    face.reserve(n);
  }
};

template <typename T>
inline T safe_inv(T x) {
  return x > T(0) ? T(1) / x : T(0);
}

template <typename T>
Packed<T> pack(const T* verts /* [V, 3] */, const int64_t* faces, const bool* active, int64_t n_faces) {
  Packed<T> p;
  p.reserve(static_cast<size_t>(n_faces));
  for (int64_t f = 0; f < n_faces; ++f) {
    if (!active[f]) continue;
    const T* a = verts + 3 * faces[3 * f];
    const T* b = verts + 3 * faces[3 * f + 1];
    const T* c = verts + 3 * faces[3 * f + 2];
    T ab[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    T ac[3] = {c[0] - a[0], c[1] - a[1], c[2] - a[2]};
    T bc[3] = {c[0] - b[0], c[1] - b[1], c[2] - b[2]};
    T n[3] = {ab[1] * ac[2] - ab[2] * ac[1], ab[2] * ac[0] - ab[0] * ac[2], ab[0] * ac[1] - ab[1] * ac[0]};
    T nn = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    T inv_n = safe_inv(nn);
    T e00 = ab[0] * ab[0] + ab[1] * ab[1] + ab[2] * ab[2];
    T e01 = ab[0] * ac[0] + ab[1] * ac[1] + ab[2] * ac[2];
    T e11 = ac[0] * ac[0] + ac[1] * ac[1] + ac[2] * ac[2];
    T den = e00 * e11 - e01 * e01;
    // A degenerate (zero-area) triangle has no interior: inv_den = 0 makes the inside test fail below.
    bool flat = !(nn > T(0)) || !(den > T(1e-30) * std::max(e00 * e11, T(1e-300)));
    p.face.push_back(f);
    p.ax.push_back(a[0]); p.ay.push_back(a[1]); p.az.push_back(a[2]);
    p.abx.push_back(ab[0]); p.aby.push_back(ab[1]); p.abz.push_back(ab[2]);
    p.acx.push_back(ac[0]); p.acy.push_back(ac[1]); p.acz.push_back(ac[2]);
    p.bx.push_back(b[0]); p.by.push_back(b[1]); p.bz.push_back(b[2]);
    p.bcx.push_back(bc[0]); p.bcy.push_back(bc[1]); p.bcz.push_back(bc[2]);
    p.inv_ab.push_back(safe_inv(e00));
    p.inv_ac.push_back(safe_inv(e11));
    p.inv_bc.push_back(safe_inv(bc[0] * bc[0] + bc[1] * bc[1] + bc[2] * bc[2]));
    p.nx.push_back(n[0] * inv_n); p.ny.push_back(n[1] * inv_n); p.nz.push_back(n[2] * inv_n);
    p.d00.push_back(e00); p.d01.push_back(e01); p.d11.push_back(e11);
    p.inv_den.push_back(flat ? T(0) : T(1) / den);
  }
  return p;
}

template <typename T>
inline T clamp01(T x) {
  return x < T(0) ? T(0) : (x > T(1) ? T(1) : x);
}

// Squared distances of point (px, py, pz) to every packed triangle, written to out[0..n).
template <typename T>
void distances(const Packed<T>& t, T px, T py, T pz, T* __restrict out) {
  const int64_t n = static_cast<int64_t>(t.face.size());
  const T* __restrict ax = t.ax.data(); const T* __restrict ay = t.ay.data(); const T* __restrict az = t.az.data();
  const T* __restrict abx = t.abx.data(); const T* __restrict aby = t.aby.data(); const T* __restrict abz = t.abz.data();
  const T* __restrict acx = t.acx.data(); const T* __restrict acy = t.acy.data(); const T* __restrict acz = t.acz.data();
  const T* __restrict bx = t.bx.data(); const T* __restrict by = t.by.data(); const T* __restrict bz = t.bz.data();
  const T* __restrict bcx = t.bcx.data(); const T* __restrict bcy = t.bcy.data(); const T* __restrict bcz = t.bcz.data();
  const T* __restrict iab = t.inv_ab.data(); const T* __restrict iac = t.inv_ac.data(); const T* __restrict ibc = t.inv_bc.data();
  const T* __restrict nx = t.nx.data(); const T* __restrict ny = t.ny.data(); const T* __restrict nz = t.nz.data();
  const T* __restrict d00 = t.d00.data(); const T* __restrict d01 = t.d01.data(); const T* __restrict d11 = t.d11.data();
  const T* __restrict iden = t.inv_den.data();
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    T apx = px - ax[i], apy = py - ay[i], apz = pz - az[i];
    T d20 = apx * abx[i] + apy * aby[i] + apz * abz[i];
    T d21 = apx * acx[i] + apy * acy[i] + apz * acz[i];
    // Edge ab.
    T s = clamp01(d20 * iab[i]);
    T ex = apx - s * abx[i], ey = apy - s * aby[i], ez = apz - s * abz[i];
    T best = ex * ex + ey * ey + ez * ez;
    // Edge ac.
    s = clamp01(d21 * iac[i]);
    ex = apx - s * acx[i]; ey = apy - s * acy[i]; ez = apz - s * acz[i];
    T d = ex * ex + ey * ey + ez * ez;
    best = d < best ? d : best;
    // Edge bc.
    T bpx = px - bx[i], bpy = py - by[i], bpz = pz - bz[i];
    s = clamp01((bpx * bcx[i] + bpy * bcy[i] + bpz * bcz[i]) * ibc[i]);
    ex = bpx - s * bcx[i]; ey = bpy - s * bcy[i]; ez = bpz - s * bcz[i];
    d = ex * ex + ey * ey + ez * ez;
    best = d < best ? d : best;
    // Interior: barycentric (v, w) of the projection; the plane distance when inside.
    T v = (d11[i] * d20 - d01[i] * d21) * iden[i];
    T w = (d00[i] * d21 - d01[i] * d20) * iden[i];
    T h = apx * nx[i] + apy * ny[i] + apz * nz[i];
    bool inside = (iden[i] != T(0)) & (v >= T(0)) & (w >= T(0)) & (v + w <= T(1));
    T plane = h * h;
    out[i] = inside ? (plane < best ? plane : best) : best;
  }
}

template <typename T>
void nearest_impl(const T* points, int64_t pb, int64_t m, const T* verts, int64_t vb, int64_t nv,
                  const int64_t* faces, int64_t nf, const bool* active, int64_t ab, const int64_t* lengths,
                  int64_t batch, int64_t* out, int n_threads) {
  std::vector<Packed<T>> packed(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    const bool* act = active + (ab > 1 ? b : 0) * nf;
    packed[b] = pack(verts + (vb > 1 ? b : 0) * nv * 3, faces, act, nf);
  }
  std::fill(out, out + batch * m, int64_t(-1));
  const int64_t block = 128;
  const int64_t blocks = (m + block - 1) / block;
  const int64_t items = batch * blocks;
  n_threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, items)));
  run_parallel(n_threads, [&](std::atomic<int64_t>& next) {
    std::vector<T> buf;
    for (int64_t item = next++; item < items; item = next++) {
      const int64_t b = item / blocks, start = (item % blocks) * block;
      const Packed<T>& t = packed[b];
      const int64_t n = static_cast<int64_t>(t.face.size());
      const int64_t len = lengths[pb > 1 ? b : 0];
      if (n == 0) continue;
      buf.resize(static_cast<size_t>(n));
      const T* pts = points + (pb > 1 ? b : 0) * m * 3;
      const int64_t stop = std::min(start + block, std::min(m, len));
      for (int64_t j = start; j < stop; ++j) {
        distances(t, pts[3 * j], pts[3 * j + 1], pts[3 * j + 2], buf.data());
        int64_t arg = 0;
        T lo = buf[0];
        for (int64_t i = 1; i < n; ++i) {
          if (buf[i] < lo) { lo = buf[i]; arg = i; }
        }
        out[b * m + j] = t.face[arg];
      }
    }
  });
}

torch::Tensor nearest_faces(torch::Tensor points, torch::Tensor verts, torch::Tensor faces, torch::Tensor face_active,
                            torch::Tensor lengths, int64_t batch, int64_t n_threads) {
  TORCH_CHECK(points.device().is_cpu() && verts.device().is_cpu(), "nearest_faces: CPU tensors expected");
  TORCH_CHECK(points.dim() == 3 && points.size(2) == 3, "points must be [B, M, 3]");
  TORCH_CHECK(verts.dim() == 3 && verts.size(2) == 3, "verts must be [B, V, 3]");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kInt64, "faces must be int64 [F, 3]");
  TORCH_CHECK(face_active.scalar_type() == torch::kBool && face_active.dim() == 2 && face_active.size(1) == faces.size(0),
              "face_active must be bool [B, F]");
  TORCH_CHECK(points.scalar_type() == verts.scalar_type(), "points and verts must share a dtype");
  const int64_t nv = verts.size(1);
  if (faces.numel() > 0) {
    TORCH_CHECK(faces.min().item<int64_t>() >= 0 && faces.max().item<int64_t>() < nv, "face index out of range");
  }
  auto out = torch::empty({batch, points.size(1)}, points.options().dtype(torch::kInt64));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "nearest_faces", [&] {
    nearest_impl<scalar_t>(points.data_ptr<scalar_t>(), points.size(0), points.size(1), verts.data_ptr<scalar_t>(),
                           verts.size(0), nv, faces.data_ptr<int64_t>(), faces.size(0), face_active.data_ptr<bool>(),
                           face_active.size(0), lengths.data_ptr<int64_t>(), batch, out.data_ptr<int64_t>(),
                           static_cast<int>(n_threads));
  });
  return out;
}

// Barycentric weights (wa, wb, wc) of the point of triangle (a, b, c) closest to p, by Voronoi region
// (Ericson, Real-Time Collision Detection 5.1.5), regions tested in the order a, b, ab, c, ac, bc, face;
// the same tests and divisions as splat/ops/mesh_distance.py::closest_point_weights, its torch twin.
// Compiled without fused multiply-add: on a degenerate triangle the region tests compare products
// that are equal in exact arithmetic (b == c gives vc = d1 d4 - d3 d2 = 0), and a*b - c*d fused into
// one rounding is not 0, which sent such points to the wrong region (a corner instead of the edge).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
template <typename T>
inline void closest_weights_one(const T* p, const T* tri, T eps, T* w) {
  const T *a = tri, *b = tri + 3, *c = tri + 6;
  auto safe_div = [eps](T n, T d) { return n / (std::abs(d) > eps ? d : eps); };
  T ab[3], ac[3], ap[3], bp[3], cp[3];
  for (int k = 0; k < 3; ++k) {
    ab[k] = b[k] - a[k]; ac[k] = c[k] - a[k]; ap[k] = p[k] - a[k]; bp[k] = p[k] - b[k]; cp[k] = p[k] - c[k];
  }
  auto dot = [](const T* u, const T* v) { return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]; };
  const T d1 = dot(ab, ap), d2 = dot(ac, ap), d3 = dot(ab, bp), d4 = dot(ac, bp), d5 = dot(ab, cp), d6 = dot(ac, cp);
  const T va = d3 * d6 - d5 * d4, vb = d5 * d2 - d1 * d6, vc = d1 * d4 - d3 * d2;
  T wa = 0, wb = 0, wc = 0;
  if (d1 <= T(0) && d2 <= T(0)) {
    wa = 1;
  } else if (d3 >= T(0) && d4 <= d3) {
    wb = 1;
  } else if (vc <= T(0) && d1 >= T(0) && d3 <= T(0)) {
    wb = safe_div(d1, d1 - d3); wa = T(1) - wb;
  } else if (d6 >= T(0) && d5 <= d6) {
    wc = 1;
  } else if (vb <= T(0) && d2 >= T(0) && d6 <= T(0)) {
    wc = safe_div(d2, d2 - d6); wa = T(1) - wc;
  } else if (va <= T(0) && d4 - d3 >= T(0) && d5 - d6 >= T(0)) {
    wc = safe_div(d4 - d3, (d4 - d3) + (d5 - d6)); wb = T(1) - wc;
  } else {
    const T denom = va + vb + vc;
    wb = safe_div(vb, denom); wc = safe_div(vc, denom); wa = T(1) - wb - wc;
  }
  w[0] = wa; w[1] = wb; w[2] = wc;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

// points [N, 3], corners [N, 3, 3] (one triangle per point) -> weights [N, 3] of the closest point.
torch::Tensor closest_weights(torch::Tensor points, torch::Tensor corners, int64_t n_threads) {
  TORCH_CHECK(points.device().is_cpu() && corners.device().is_cpu(), "closest_weights: CPU tensors expected");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be [N, 3]");
  TORCH_CHECK(corners.dim() == 3 && corners.size(0) == points.size(0) && corners.size(1) == 3 && corners.size(2) == 3,
              "corners must be [N, 3, 3]");
  TORCH_CHECK(points.scalar_type() == corners.scalar_type(), "points and corners must share a dtype");
  TORCH_CHECK(points.is_contiguous() && corners.is_contiguous(), "contiguous tensors expected");
  const int64_t n = points.size(0);
  auto out = torch::empty({n, 3}, points.options());
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "closest_weights", [&] {
    const scalar_t* p = points.data_ptr<scalar_t>();
    const scalar_t* t = corners.data_ptr<scalar_t>();
    scalar_t* w = out.data_ptr<scalar_t>();
    const scalar_t eps = std::numeric_limits<scalar_t>::min() * scalar_t(1e6);
    const int64_t block = 4096, blocks = (n + block - 1) / block;
    const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(n_threads, blocks)));
    run_parallel(threads, [&](std::atomic<int64_t>& next) {
      for (int64_t item = next++; item < blocks; item = next++) {
        for (int64_t i = item * block; i < std::min(n, (item + 1) * block); ++i)
          closest_weights_one(p + 3 * i, t + 9 * i, eps, w + 3 * i);
      }
    });
  });
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("nearest_faces", &nearest_faces, "Index of the nearest active triangle of each point (CPU)");
  m.def("closest_weights", &closest_weights, "Barycentric weights of each point's closest point on its triangle (CPU)");
}
