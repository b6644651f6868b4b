// The discrete choices of splat/ops/mesh_raster.py on CPU: which triangle each pixel centre sees (the
// z-buffer), for each covered/uncovered neighbour pair which hull edge of the covering part its
// segment leaves through (the silhouette), and which points some depth view saw or saw through (the
// search's visibility test, splat/search/views.py). The differentiable values (depth, the crossing t) are
// computed from these choices in torch; see that module for the conventions.
//
// Both functions reproduce the torch reference bit for bit: every quantity a choice depends on is
// formed with the same operations, in the same order and precision (float or double, as given), and
// floating-point contraction is off below so that a*b - c*d is not fused into one rounding as an FMA
// (torch rounds each elementwise op); the tests check this against the reference. Plain loops on one
// thread: a program mesh has at most a few thousand triangles and an image a few thousand outline
// pairs, and both functions take a fraction of a millisecond at 256 x 256.

#include <torch/extension.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <type_traits>
#include <vector>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace {

// ---------------------------------------------------------------------------------------------------
// z-buffer

// Each usable triangle's pixel-centre bounding box is scanned; a pixel keeps the hit of smallest depth
// 1 / inv_z, where inv_z is the perspective-correct interpolation of 1 / z. Faces are visited in
// increasing index and a hit replaces the kept one only if strictly nearer, so at exactly equal depth
// the lowest face index wins (the reference does the same with scatter_reduce "amin" on the index).
// The loop over a row's pixels is branch-free so that the compiler vectorises it; factors constant
// along the row are hoisted, which changes no rounding. Face indices are kept as I (int32 for float,
// so that all lanes have the same width) and widened at the end.
template <typename T, typename I>
void zbuffer_impl(const T* uv, const T* z, const int64_t* faces, const bool* ok, int64_t n_faces, int64_t width,
                  int64_t height, int64_t* face_out) {
  const T inf = std::numeric_limits<T>::infinity();
  std::vector<T> best(static_cast<size_t>(width * height), inf);
  std::vector<I> face(static_cast<size_t>(width * height), I(-1));
  // the box [lo, hi] of pixel indices whose centre (i + 1/2) lies in [mn, mx], clamped as the reference
  auto box = [](T mn, T mx, int64_t n, int64_t& lo, int64_t& hi) {
    T a = std::ceil(mn - T(0.5)), b = std::floor(mx - T(0.5));
    if (!(a == a) || !(b == b)) return false;  // NaN corner
    lo = static_cast<int64_t>(std::min(std::max(a, T(0)), T(n)));
    hi = static_cast<int64_t>(std::min(std::max(b, T(-1)), T(n - 1)));
    return lo <= hi;
  };
  for (int64_t f = 0; f < n_faces; ++f) {
    if (!ok[f]) continue;
    const int64_t i0 = faces[3 * f], i1 = faces[3 * f + 1], i2 = faces[3 * f + 2];
    const T ax = uv[2 * i0], ay = uv[2 * i0 + 1], bx = uv[2 * i1], by = uv[2 * i1 + 1];
    const T cx = uv[2 * i2], cy = uv[2 * i2 + 1];
    const T z0 = z[i0], z1 = z[i1], z2 = z[i2];
    const I fi = static_cast<I>(f);
    int64_t c0, c1, r0, r1;
    if (!box(std::min(std::min(ax, bx), cx), std::max(std::max(ax, bx), cx), width, c0, c1)) continue;
    if (!box(std::min(std::min(ay, by), cy), std::max(std::max(ay, by), cy), height, r0, r1)) continue;
    for (int64_t row = r0; row <= r1; ++row) {
      const T py = static_cast<T>(row) + T(0.5);
      // edge function w = (q - p) x (pixel - p) of the edges bc, ca, ab: u * (py - p.y) - v * (px - p.x)
      const T k0 = (cx - bx) * (py - by), v0 = cy - by;
      const T k1 = (ax - cx) * (py - cy), v1 = ay - cy;
      const T k2 = (bx - ax) * (py - ay), v2 = by - ay;
      T* brow = best.data() + row * width;
      I* frow = face.data() + row * width;
      for (int64_t col = c0; col <= c1; ++col) {
        const T px = static_cast<T>(col) + T(0.5);
        const T w0 = k0 - v0 * (px - bx);
        const T w1 = k1 - v1 * (px - cx);
        const T w2 = k2 - v2 * (px - ax);
        const T area = w0 + w1 + w2;
        const bool inside = (std::abs(area) > T(1e-12)) & (((w0 >= T(0)) & (w1 >= T(0)) & (w2 >= T(0))) |
                                                           ((w0 <= T(0)) & (w1 <= T(0)) & (w2 <= T(0))));
        const T inv_z = (w0 / z0 + w1 / z1 + w2 / z2) / area;  // only used where inside
        const T depth = T(1) / inv_z;
        const T b = brow[col];
        const I fo = frow[col];
        // the first hit of a pixel is kept even at depth inf (the reference compares with <= against inf)
        const bool take = inside & (inv_z > T(0)) & ((depth < b) | ((fo < 0) & (depth <= b)));
        brow[col] = take ? depth : b;
        frow[col] = take ? fi : fo;
      }
    }
  }
  std::copy(face.begin(), face.end(), face_out);
}

torch::Tensor zbuffer(torch::Tensor uv, torch::Tensor z, torch::Tensor faces, torch::Tensor ok, int64_t width,
                      int64_t height) {
  TORCH_CHECK(uv.device().is_cpu() && z.device().is_cpu() && faces.device().is_cpu() && ok.device().is_cpu(),
              "zbuffer: CPU tensors expected");
  TORCH_CHECK(uv.dim() == 2 && uv.size(1) == 2, "uv must be [V, 2]");
  TORCH_CHECK(z.dim() == 1 && z.size(0) == uv.size(0) && z.scalar_type() == uv.scalar_type(),
              "z must be [V] with uv's dtype");
  TORCH_CHECK(faces.dim() == 2 && faces.size(1) == 3 && faces.scalar_type() == torch::kInt64,
              "faces must be int64 [F, 3]");
  TORCH_CHECK(ok.dim() == 1 && ok.size(0) == faces.size(0) && ok.scalar_type() == torch::kBool, "ok must be bool [F]");
  TORCH_CHECK(width >= 0 && height >= 0, "image size must be non-negative");
  uv = uv.contiguous();
  z = z.contiguous();
  faces = faces.contiguous();
  ok = ok.contiguous();
  const int64_t nv = uv.size(0), nf = faces.size(0);
  if (nf > 0) {
    TORCH_CHECK(faces.min().item<int64_t>() >= 0 && faces.max().item<int64_t>() < nv, "face index out of range");
  }
  TORCH_CHECK(nf < (int64_t(1) << 31), "zbuffer: at most 2^31 - 1 faces");
  auto out = torch::empty({height, width}, torch::dtype(torch::kInt64));
  AT_DISPATCH_FLOATING_TYPES(uv.scalar_type(), "zbuffer", [&] {
    using index_t = std::conditional_t<sizeof(scalar_t) == 4, int32_t, int64_t>;
    zbuffer_impl<scalar_t, index_t>(uv.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), faces.data_ptr<int64_t>(),
                           ok.data_ptr<bool>(), nf, width, height, out.data_ptr<int64_t>());
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// silhouette

// Counter-clockwise (x right, y up) convex hull of the points ``ids`` of ``pts`` (double), as vertex
// ids; empty when degenerate (fewer than three hull vertices). Andrew's monotone chain on the points
// sorted by (x, y, id); coincident points are reduced to the lowest id. A vertex is dropped as collinear
// when it lies within 15 * DBL_EPSILON * (largest |coordinate| of the part) of the line through its
// neighbours, about where qhull (scipy's ConvexHull, the reference) merges it away (measured): vertices on a
// hull edge in exact arithmetic (a subdivided box's edge, a face seen edge-on) are dropped by both,
// ones that stick out by more than rounding are kept by both.
std::vector<int64_t> convex_hull(const std::vector<double>& pts, std::vector<int64_t> ids) {
  std::vector<int64_t> hull;
  double maxabs = 0.0;
  for (int64_t i : ids) {
    const double x = pts[2 * i], y = pts[2 * i + 1];
    if (!std::isfinite(x) || !std::isfinite(y)) return hull;  // qhull rejects these
    maxabs = std::max(maxabs, std::max(std::abs(x), std::abs(y)));
  }
  std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) {
    const double ax = pts[2 * a], bx = pts[2 * b], ay = pts[2 * a + 1], by = pts[2 * b + 1];
    return ax < bx || (ax == bx && (ay < by || (ay == by && a < b)));
  });
  auto same = [&](int64_t a, int64_t b) { return pts[2 * a] == pts[2 * b] && pts[2 * a + 1] == pts[2 * b + 1]; };
  ids.erase(std::unique(ids.begin(), ids.end(), same), ids.end());
  if (ids.size() < 3) return hull;
  const double tol = 15.0 * DBL_EPSILON * maxabs;
  // true when the turn o -> a -> b is not strictly left: a within tol of the line o b, or right of it
  auto not_left = [&](int64_t o, int64_t a, int64_t b) {
    const double ox = pts[2 * o], oy = pts[2 * o + 1];
    const double cross = (pts[2 * a] - ox) * (pts[2 * b + 1] - oy) - (pts[2 * a + 1] - oy) * (pts[2 * b] - ox);
    return cross <= tol * std::hypot(pts[2 * b] - ox, pts[2 * b + 1] - oy);
  };
  std::vector<int64_t> chain;
  for (int pass = 0; pass < 2; ++pass) {  // lower hull left to right, then upper hull right to left
    const size_t base = chain.size();
    for (size_t k = 0; k < ids.size(); ++k) {
      const int64_t p = pass == 0 ? ids[k] : ids[ids.size() - 1 - k];
      while (chain.size() >= base + 2 && not_left(chain[chain.size() - 2], chain.back(), p)) chain.pop_back();
      chain.push_back(p);
    }
    chain.pop_back();  // the last point starts the other half
  }
  if (chain.size() >= 3) hull = std::move(chain);
  return hull;
}

// For each neighbour pair (inside pixel a covered by part p, outside pixel b uncovered) in the
// reference's order -- horizontal pairs with a left of b, then with a right of b, then vertical pairs
// with a above b, then below -- the hull edge of p through which the segment a -> b leaves first:
// s = ga / (ga - gb) over the edges with gb < 0 (g >= 0 inside, g the edge's 2D cross product), the
// smallest s as torch's amin takes it (NaN wins). Pairs whose part has a degenerate hull, or whose
// smallest s is not finite (the segment does not leave), are dropped, as the reference drops them.
// Where two edges give exactly the same smallest s (the segment leaves through a hull vertex) both are
// returned, as amin's gradient splits between them; otherwise the one edge twice.
template <typename T>
void silhouette_impl(const int64_t* part, int64_t H, int64_t W, const T* uv, const int64_t* vert_part, int64_t nv,
                     std::vector<int64_t>& pair_out, std::vector<int64_t>& edge_out) {
  const int64_t n_pix = H * W;
  std::vector<uint8_t> cov(static_cast<size_t>(n_pix)), mark(static_cast<size_t>(n_pix));
  int64_t n_parts = 0;
  for (int64_t i = 0; i < n_pix; ++i) {
    cov[i] = part[i] >= 0;
    n_parts = std::max(n_parts, part[i] + 1);
  }
  for (int64_t v = 0; v < nv; ++v) n_parts = std::max(n_parts, vert_part[v] + 1);
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(n_parts));
  for (int64_t v = 0; v < nv; ++v)
    if (vert_part[v] >= 0) members[vert_part[v]].push_back(v);
  std::vector<double> pts(static_cast<size_t>(2 * nv));
  for (int64_t i = 0; i < 2 * nv; ++i) pts[i] = static_cast<double>(uv[i]);
  std::vector<std::vector<int64_t>> hulls(static_cast<size_t>(n_parts));
  std::vector<char> hull_done(static_cast<size_t>(n_parts), 0);

  auto pair = [&](int64_t a, int64_t b) {  // a covered, b not
    const int64_t p = part[a];
    if (!hull_done[p]) {
      hulls[p] = convex_hull(pts, members[p]);
      hull_done[p] = 1;
    }
    const std::vector<int64_t>& h = hulls[p];
    const size_t m = h.size();
    if (m == 0) return;
    const T pax = static_cast<T>(a % W) + T(0.5), pay = static_cast<T>(a / W) + T(0.5);
    const T pbx = pax + static_cast<T>(b % W - a % W), pby = pay + static_cast<T>(b / W - a / W);
    const T inf = std::numeric_limits<T>::infinity();
    T best = inf;
    int64_t first = -1, second = -1;
    bool nan = false;
    for (size_t k = 0; k < m; ++k) {
      const int64_t i0 = h[k], i1 = h[(k + 1) % m];
      const T e0x = uv[2 * i0], e0y = uv[2 * i0 + 1];
      const T dx = uv[2 * i1] - e0x, dy = uv[2 * i1 + 1] - e0y;
      const T ga = dx * (pay - e0y) - dy * (pax - e0x);
      const T gb = dx * (pby - e0y) - dy * (pbx - e0x);
      const T s = gb < T(0) ? ga / (ga - gb) : inf;
      if (s != s) {
        nan = true;
        break;
      }
      if (s < best) {
        best = s;
        first = static_cast<int64_t>(k);
        second = -1;
      } else if (s == best && first >= 0 && second < 0) {
        second = static_cast<int64_t>(k);
      }
    }
    if (nan || !std::isfinite(best)) return;
    if (second < 0) second = first;
    pair_out.push_back(a);
    pair_out.push_back(b);
    for (int64_t k : {first, second}) {
      edge_out.push_back(h[k]);
      edge_out.push_back(h[(k + 1) % m]);
    }
  };
  // The reference's four groups in its order, each in row-major order of its first pixel i: (i, i + 1)
  // with i covered, (i + 1, i) with i + 1 covered, (i, i + W), (i + W, i). A vectorised pass marks the
  // first pixels of a group's pairs; the sparse marks are then found eight bytes at a time.
  for (int group = 0; group < 4; ++group) {
    const bool vertical = group >= 2, reverse = group % 2 == 1;
    const int64_t step = vertical ? W : 1;
    const int64_t n = std::max<int64_t>(0, n_pix - step);  // pixels i with a neighbour i + step
    const uint8_t *first = cov.data(), *second = cov.data() + step;
    if (reverse) std::swap(first, second);  // first: covered, second: not
    for (int64_t i = 0; i < n; ++i) mark[i] = first[i] & (second[i] ^ 1);
    if (!vertical)
      for (int64_t i = W - 1; i < n; i += W) mark[i] = 0;  // the row's last pixel has no right neighbour
    int64_t i = 0;
    auto visit = [&](int64_t k) {
      if (mark[k]) reverse ? pair(k + step, k) : pair(k, k + step);
    };
    for (; i + 8 <= n; i += 8) {
      uint64_t word;
      std::memcpy(&word, mark.data() + i, 8);
      if (word)
        for (int64_t k = i; k < i + 8; ++k) visit(k);
    }
    for (; i < n; ++i) visit(i);
  }
}

std::vector<torch::Tensor> silhouette_edges(torch::Tensor part, torch::Tensor uv, torch::Tensor vert_part) {
  TORCH_CHECK(part.device().is_cpu() && uv.device().is_cpu() && vert_part.device().is_cpu(),
              "silhouette_edges: CPU tensors expected");
  TORCH_CHECK(part.dim() == 2 && part.scalar_type() == torch::kInt64, "part must be int64 [H, W]");
  TORCH_CHECK(uv.dim() == 2 && uv.size(1) == 2, "uv must be [V, 2]");
  TORCH_CHECK(vert_part.dim() == 1 && vert_part.size(0) == uv.size(0) && vert_part.scalar_type() == torch::kInt64,
              "vert_part must be int64 [V]");
  part = part.contiguous();
  uv = uv.contiguous();
  vert_part = vert_part.contiguous();
  std::vector<int64_t> pairs, edges;
  AT_DISPATCH_FLOATING_TYPES(uv.scalar_type(), "silhouette_edges", [&] {
    silhouette_impl<scalar_t>(part.data_ptr<int64_t>(), part.size(0), part.size(1), uv.data_ptr<scalar_t>(),
                              vert_part.data_ptr<int64_t>(), uv.size(0), pairs, edges);
  });
  const int64_t n = static_cast<int64_t>(pairs.size() / 2);
  auto pair_t = torch::empty({n, 2}, torch::dtype(torch::kInt64));
  auto edge_t = torch::empty({n, 2, 2}, torch::dtype(torch::kInt64));
  std::copy(pairs.begin(), pairs.end(), pair_t.data_ptr<int64_t>());
  std::copy(edges.begin(), edges.end(), edge_t.data_ptr<int64_t>());
  return {pair_t, edge_t};
}

// ---------------------------------------------------------------------------------------------------
// points seen through depth views

// For each point (float32) whether some view saw it or saw through it: in front of the camera
// (z > 1e-6), its pixel (u, v) inside the frame, and z <= free[view, row, col] + tolerance. The same
// formulas as mesh_raster.py::_points_seen_torch (camera point p R^T + t, u = (fx x + s y) / z + cx,
// v = fy y / z + cy, the pixel the truncation of the clamped u, v); a point stops at the first view that
// saw it. Threads over blocks of points (plain std::thread).
torch::Tensor points_seen(torch::Tensor points, torch::Tensor viewmats, torch::Tensor Ks, torch::Tensor free_depth,
                          double tolerance, int64_t n_threads) {
  for (const auto* t : {&points, &viewmats, &Ks, &free_depth}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->is_contiguous(),
                "points_seen: contiguous float32 CPU tensors expected");
  }
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "points must be [P, 3]");
  const int64_t nv = viewmats.size(0), n = points.size(0);
  TORCH_CHECK(viewmats.dim() == 3 && viewmats.size(1) == 4 && viewmats.size(2) == 4, "viewmats must be [V, 4, 4]");
  TORCH_CHECK(Ks.dim() == 3 && Ks.size(0) == nv && Ks.size(1) == 3 && Ks.size(2) == 3, "Ks must be [V, 3, 3]");
  TORCH_CHECK(free_depth.dim() == 3 && free_depth.size(0) == nv, "free_depth must be [V, H, W]");
  const int64_t height = free_depth.size(1), width = free_depth.size(2);
  auto out = torch::zeros({n}, points.options().dtype(at::kBool));
  const float* p = points.data_ptr<float>();
  const float* vm = viewmats.data_ptr<float>();
  const float* ks = Ks.data_ptr<float>();
  const float* fd = free_depth.data_ptr<float>();
  bool* seen = out.data_ptr<bool>();
  const float tol = static_cast<float>(tolerance), w = static_cast<float>(width), h = static_cast<float>(height);
  auto body = [&](int64_t start, int64_t stop) {
    for (int64_t i = start; i < stop; ++i) {
      const float px = p[3 * i], py = p[3 * i + 1], pz = p[3 * i + 2];
      for (int64_t v = 0; v < nv; ++v) {
        const float* m = vm + 16 * v;
        const float* k = ks + 9 * v;
        const float x = px * m[0] + py * m[1] + pz * m[2] + m[3];
        const float y = px * m[4] + py * m[5] + pz * m[6] + m[7];
        const float z = px * m[8] + py * m[9] + pz * m[10] + m[11];
        if (!(z > 1e-6f)) continue;
        const float u = (k[0] * x + k[1] * y) / z + k[2];
        const float vv = k[4] * y / z + k[5];
        if (!(u >= 0.f && u < w && vv >= 0.f && vv < h)) continue;
        const int64_t col = static_cast<int64_t>(std::min(u, w - 1.f));
        const int64_t row = static_cast<int64_t>(std::min(vv, h - 1.f));
        if (z <= fd[(v * height + row) * width + col] + tol) {
          seen[i] = true;
          break;
        }
      }
    }
  };
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(n_threads, n / 4096));
  if (threads == 1) {
    body(0, n);
  } else {
    std::vector<std::thread> pool;
    const int64_t chunk = (n + threads - 1) / threads;
    for (int64_t t = 1; t < threads; ++t) pool.emplace_back(body, t * chunk, std::min(n, (t + 1) * chunk));
    body(0, std::min(n, chunk));
    for (auto& th : pool) th.join();
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("points_seen", &points_seen, "Which points some depth view saw or saw through (CPU, float32)");
  m.def("zbuffer", &zbuffer, "Nearest triangle of each pixel centre, -1 for none (CPU)");
  m.def("silhouette_edges", &silhouette_edges,
        "Outline pairs (inside, outside pixel) and the hull edges their segments leave through (CPU)");
}
