// Fused SSIM map of channels-last images and its gradient in the prediction, for the CPU.
//
// Semantics are those of splat.metrics.ssim_map (see splat/ops/ssim.py): per channel the five local
// statistics mu_x, mu_y, E[x^2], E[y^2], E[xy] are a separable correlation with the 1-D window w (k
// taps) and zero padding `pad` on each side (pad = k / 2: "same"; 0: "valid"), i.e. output row o is
// sum_t w[t] R(o + t - pad) over input rows R, zero outside the image, and the same along a row. The
// SSIM of each pixel and channel follows from them, and the map is its mean over channels.
//
// Layout. Images stay channels-last [B, H, W, C]: a row is W * C contiguous values, and the horizontal
// correlation of all channels at once is out[m] = sum_t w[t] in[m + t C] on a row padded with pad * C
// zeros at both ends, so every pass is a weighted sum of contiguous rows (weighted_rows, 8-lane GCC/
// Clang generic vectors, -march decides the instructions). stream_rows runs the vertical pass down a band
// of output rows, keeping the horizontally filtered input rows it needs in a ring of k rows, so every
// input row is filtered once per band and the working set stays in cache.
//
// Forward: the five statistics (streams x, y, x^2, y^2, xy), then per pixel and channel the SSIM and,
// when a gradient will be needed, three factors p_a = dS/dmu_x, p_b = dS/dE[x^2], p_c = dS/dE[xy]
// (derivation in splat/ops/ssim.py). Backward: with g the incoming gradient of the map divided by C,
// the maps a = g p_a, b = g p_b, c = g p_c go through the adjoint of the blur, which is the same
// correlation with the taps reversed and padding k - 1 - pad (mapping the output size back to the input
// size), and dL/dx = blur^T(a) + 2 x blur^T(b) + y blur^T(c).
//
// Threads: as many as torch's setting (at::get_num_threads) allows, fewer for small images (below
// kMinThreadWork values each the calling thread works alone). Work items are (image, band of rows),
// pulled from an atomic counter by plain std::threads (the caller is one of them) with a blocking join;
// see run_parallel in splat/render/cpu/rasterize.cpp for why not OpenMP or at::parallel_for. Each output
// value is summed in a fixed order, so results do not depend on the thread count. float32 for speed and
// float64 for gradcheck share one template.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

constexpr int kLanes = 8;
constexpr int kBlock = 8;                    // vectors summed side by side in weighted_rows
constexpr int kMinBandRows = 32;             // fewer rows per band would refilter too large a share of halo rows
constexpr int64_t kMinThreadWork = 1 << 15;  // values per thread below which starting threads costs more

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float V __attribute__((vector_size(kLanes * sizeof(float))));
};
template <>
struct Vec<double> {
  typedef double V __attribute__((vector_size(kLanes * sizeof(double))));
};

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// out[m] = sum_t w[t] src[t][m] for m < n, summed in order t = 0, 1, ... (zero when n_src is 0).
// Blocks of kBlock vectors: independent accumulators, so that the sums do not wait on each other's
// FMA latency.
template <typename T>
void weighted_rows(const T* const* src, const T* w, int n_src, int64_t n, T* __restrict out) {
  using V = typename Vec<T>::V;
  int64_t m = 0;
  for (; m + kBlock * kLanes <= n; m += kBlock * kLanes) {
    V a[kBlock];
#pragma GCC unroll 8
    for (int i = 0; i < kBlock; ++i) a[i] = V{};
    for (int t = 0; t < n_src; ++t) {
      const T wt = w[t];
      const T* row = src[t] + m;
#pragma GCC unroll 8
      for (int i = 0; i < kBlock; ++i) a[i] += wt * load<V>(row + i * kLanes);
    }
#pragma GCC unroll 8
    for (int i = 0; i < kBlock; ++i) store(out + m + i * kLanes, a[i]);
  }
  for (; m + kLanes <= n; m += kLanes) {
    V a = V{};
    for (int t = 0; t < n_src; ++t) a += w[t] * load<V>(src[t] + m);
    store(out + m, a);
  }
  for (; m < n; ++m) {
    T a = 0;
    for (int t = 0; t < n_src; ++t) a += w[t] * src[t][m];
    out[m] = a;
  }
}

// Vertical pass of a separable correlation over a band: for each output row o in [o0, o1) the
// n_streams rows of length len sum_t w[t] R(o + t - pad) are written to acc and handed to finish(o,
// acc). R(q) (0 <= q < n_in, zero outside) is the group of n_streams rows that make_row(q, dst) writes
// to dst; groups live in `ring` (k groups, slot q % k) and each is made once, in increasing q.
template <typename T, typename MakeRow, typename Finish>
void stream_rows(int64_t o0, int64_t o1, int64_t n_in, int64_t pad, const T* w, int k, int n_streams, int64_t len,
                 T* ring, T* acc, const MakeRow& make_row, const Finish& finish) {
  std::vector<const T*> src(k);
  std::vector<T> wt(k);
  int64_t next = std::max<int64_t>(0, o0 - pad);
  for (int64_t o = o0; o < o1; ++o) {
    const int64_t lo = std::max<int64_t>(0, o - pad), hi = std::min<int64_t>(n_in, o - pad + k);
    for (; next < hi; ++next) make_row(next, ring + (next % k) * n_streams * len);
    for (int s = 0; s < n_streams; ++s) {
      int n = 0;
      for (int64_t q = lo; q < hi; ++q, ++n) {
        src[n] = ring + ((q % k) * n_streams + s) * len;
        wt[n] = w[q - o + pad];
      }
      weighted_rows(src.data(), wt.data(), n, len, acc + s * len);
    }
    finish(o, acc);
  }
}

// Horizontal correlation of n_streams padded rows (each (n_out + k - 1) * C long, in `padded`) into
// dst (n_streams rows of n_out * C).
template <typename T>
void filter_rows(const T* padded, int n_streams, int64_t n_out, int64_t channels, const T* w, int k, T* dst) {
  std::vector<const T*> src(k);
  const int64_t len_in = (n_out + k - 1) * channels, len = n_out * channels;
  for (int s = 0; s < n_streams; ++s) {
    for (int t = 0; t < k; ++t) src[t] = padded + s * len_in + t * channels;
    weighted_rows(src.data(), w, k, len, dst + s * len);
  }
}

// Runs body(next) on n_threads threads (the caller is one); bodies pull item indices from `next`.
template <typename F>
void run_parallel(int n_threads, const F& body) {
  std::atomic<int64_t> next{0};
  std::vector<std::thread> pool;
  for (int i = 1; i < n_threads; ++i) pool.emplace_back([&body, &next] { body(next); });
  body(next);
  for (auto& th : pool) th.join();
}

// Bands per image and threads for `rows` rows of `row_len` values in `batch` images: about one item per
// thread, bands of at least kMinBandRows rows, and at least kMinThreadWork values per thread (so small
// images run on the calling thread alone).
struct Split {
  int64_t bands, band_rows;
  int threads;
  Split(int64_t batch, int64_t rows, int64_t row_len) {
    const int64_t want = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(),
                                                                batch * rows * row_len / kMinThreadWork));
    bands = std::max<int64_t>(1, std::min<int64_t>((want + batch - 1) / batch, rows / kMinBandRows));
    band_rows = (rows + bands - 1) / bands;
    bands = (rows + band_rows - 1) / band_rows;
    threads = static_cast<int>(std::min<int64_t>(want, batch * bands));
  }
};

// The five rows x, y, x^2, y^2, xy of one input row.
template <typename T>
void products(const T* __restrict x, const T* __restrict y, int64_t n, T* __restrict px, T* __restrict py,
              T* __restrict pxx, T* __restrict pyy, T* __restrict pxy) {
  for (int64_t m = 0; m < n; ++m) {
    px[m] = x[m];
    py[m] = y[m];
    pxx[m] = x[m] * x[m];
    pyy[m] = y[m] * y[m];
    pxy[m] = x[m] * y[m];
  }
}

// SSIM of len values from the five statistic rows mu_x, mu_y, E[x^2], E[y^2], E[xy] (stats, each len
// long) into s; with kFactors also dS/dmu_x, dS/dE[x^2], dS/dE[xy] into da, db, dc.
template <typename T, bool kFactors>
void ssim_values(const T* __restrict stats, int64_t len, T c1, T c2, T* __restrict s, T* __restrict da,
                 T* __restrict db, T* __restrict dc) {
  for (int64_t m = 0; m < len; ++m) {
    const T mx = stats[m], my = stats[len + m];
    const T sxx = stats[2 * len + m] - mx * mx, syy = stats[3 * len + m] - my * my;
    const T sxy = stats[4 * len + m] - mx * my;
    const T a1 = 2 * mx * my + c1, a2 = 2 * sxy + c2;
    const T b1 = mx * mx + my * my + c1, b2 = sxx + syy + c2;
    const T v = (a1 * a2) / (b1 * b2);
    s[m] = v;
    if constexpr (kFactors) {
      const T inv = T(1) / (b1 * b2);
      da[m] = 2 * inv * (my * (a2 - a1) + mx * v * (b1 - b2));
      db[m] = -v * b1 * inv;  // -S / b2
      dc[m] = 2 * a1 * inv;
    }
  }
}

// out[j] = mean over c of s[j C + c], j < n; summed in channel order and scaled by 1 / C, as torch's mean.
template <typename T>
void channel_mean(const T* __restrict s, int64_t n, int64_t channels, T* __restrict out) {
  const T scale = T(1) / static_cast<T>(channels);
  for (int64_t j = 0; j < n; ++j) out[j] = s[j * channels];
  for (int64_t c = 1; c < channels; ++c) {
    for (int64_t j = 0; j < n; ++j) out[j] += s[j * channels + c];
  }
  for (int64_t j = 0; j < n; ++j) out[j] *= scale;
}

// Scaled derivatives g * d of one row of each of the three factor maps (g already per value).
template <typename T>
void scale_factors(const T* __restrict g, const T* __restrict fa, const T* __restrict fb, const T* __restrict fc,
                   int64_t n, T* __restrict a, T* __restrict b, T* __restrict c) {
  for (int64_t m = 0; m < n; ++m) {
    a[m] = g[m] * fa[m];
    b[m] = g[m] * fb[m];
    c[m] = g[m] * fc[m];
  }
}

// dL/dx = A + 2 x B + y C of one row.
template <typename T>
void combine(const T* __restrict a, const T* __restrict b, const T* __restrict c, const T* __restrict x,
             const T* __restrict y, int64_t n, T* __restrict out) {
  for (int64_t m = 0; m < n; ++m) out[m] = a[m] + 2 * x[m] * b[m] + y[m] * c[m];
}

template <typename T>
void forward_impl(const T* x, const T* y, const T* w, int k, int64_t pad, T c1, T c2, int64_t batch, int64_t height,
                  int64_t width, int64_t channels, T* smap, T* factors) {
  const int64_t ho = height + 2 * pad - k + 1, wo = width + 2 * pad - k + 1;
  const int64_t len = wo * channels, len_in = (wo + k - 1) * channels, row_in = width * channels;
  const int64_t plane = ho * len;  // one factor map of one image
  const Split split(batch, ho, len);
  run_parallel(split.threads, [&](std::atomic<int64_t>& next) {
    std::vector<T> ring(static_cast<size_t>(k * 5 * len)), acc(static_cast<size_t>(5 * len));
    std::vector<T> padded(static_cast<size_t>(5 * len_in), T(0)), s_row(static_cast<size_t>(len));
    for (int64_t item = next++; item < batch * split.bands; item = next++) {
      const int64_t b = item / split.bands, o0 = (item % split.bands) * split.band_rows;
      const int64_t o1 = std::min(ho, o0 + split.band_rows);
      const T* xb = x + b * height * row_in;
      const T* yb = y + b * height * row_in;
      auto make_row = [&](int64_t q, T* dst) {
        T* p = padded.data() + pad * channels;  // the zero borders are never written
        products(xb + q * row_in, yb + q * row_in, row_in, p, p + len_in, p + 2 * len_in, p + 3 * len_in,
                 p + 4 * len_in);
        filter_rows(padded.data(), 5, wo, channels, w, k, dst);
      };
      auto finish = [&](int64_t o, const T* stats) {
        if (factors) {
          T* f = factors + b * plane + o * len;
          ssim_values<T, true>(stats, len, c1, c2, s_row.data(), f, f + batch * plane, f + 2 * batch * plane);
        } else {
          ssim_values<T, false>(stats, len, c1, c2, s_row.data(), nullptr, nullptr, nullptr);
        }
        channel_mean(s_row.data(), wo, channels, smap + (b * ho + o) * wo);
      };
      stream_rows<T>(o0, o1, height, pad, w, k, 5, len, ring.data(), acc.data(), make_row, finish);
    }
  });
}

template <typename T>
void backward_impl(const T* x, const T* y, const T* w, int k, int64_t pad, int64_t batch, int64_t height,
                   int64_t width, int64_t channels, const T* factors, const T* grad_map, T* grad_x) {
  const int64_t ho = height + 2 * pad - k + 1, wo = width + 2 * pad - k + 1;
  const int64_t pad_t = k - 1 - pad;  // padding of the adjoint correlation (output size -> input size)
  const int64_t len = width * channels, len_in = (width + k - 1) * channels, row_o = wo * channels;
  const int64_t plane = ho * row_o;
  std::vector<T> w_rev(w, w + k);
  std::reverse(w_rev.begin(), w_rev.end());
  const Split split(batch, height, len);
  run_parallel(split.threads, [&](std::atomic<int64_t>& next) {
    std::vector<T> ring(static_cast<size_t>(k * 3 * len)), acc(static_cast<size_t>(3 * len));
    std::vector<T> padded(static_cast<size_t>(3 * len_in), T(0)), g_row(static_cast<size_t>(row_o));
    for (int64_t item = next++; item < batch * split.bands; item = next++) {
      const int64_t b = item / split.bands, p0 = (item % split.bands) * split.band_rows;
      const int64_t p1 = std::min(height, p0 + split.band_rows);
      auto make_row = [&](int64_t i, T* dst) {
        const T* f = factors + b * plane + i * row_o;
        const T* g = grad_map + (b * ho + i) * wo;
        for (int64_t c = 0; c < channels; ++c) {  // the map is the mean over channels
          for (int64_t j = 0; j < wo; ++j) g_row[j * channels + c] = g[j] / static_cast<T>(channels);
        }
        T* p = padded.data() + pad_t * channels;  // the zero borders are never written
        scale_factors(g_row.data(), f, f + batch * plane, f + 2 * batch * plane, row_o, p, p + len_in,
                      p + 2 * len_in);
        filter_rows(padded.data(), 3, width, channels, w_rev.data(), k, dst);
      };
      auto finish = [&](int64_t p, const T* a) {
        const int64_t off = (b * height + p) * len;
        combine(a, a + len, a + 2 * len, x + off, y + off, len, grad_x + off);
      };
      stream_rows<T>(p0, p1, ho, pad_t, w_rev.data(), k, 3, len, ring.data(), acc.data(), make_row, finish);
    }
  });
}

void check_image(const torch::Tensor& t, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == dtype, name, " has dtype ", t.scalar_type(), ", expected ", dtype);
}

// Checks the shared arguments; returns the output size (ho, wo).
std::pair<int64_t, int64_t> check_args(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& window,
                                       int64_t pad) {
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "float32 or float64 expected");
  check_image(x, "pred", dtype);
  check_image(y, "target", dtype);
  check_image(window, "window", dtype);
  TORCH_CHECK(x.dim() == 4 && x.sizes() == y.sizes(), "pred and target must both be [B, H, W, C]");
  const int64_t k = window.numel();
  TORCH_CHECK(window.dim() == 1 && k % 2 == 1, "window must be 1-D with an odd number of taps");
  TORCH_CHECK(pad >= 0 && pad <= k / 2, "pad must be in [0, window_size / 2]");
  const int64_t ho = x.size(1) + 2 * pad - k + 1, wo = x.size(2) + 2 * pad - k + 1;
  TORCH_CHECK(x.numel() > 0, "empty images");
  TORCH_CHECK(ho > 0 && wo > 0, "images are smaller than the window");
  return {ho, wo};
}

}  // namespace

// SSIM map [B, H', W'] (mean over channels) and, when need_factors, the factors [3, B, H', W', C] the
// backward takes (else an empty tensor).
std::vector<torch::Tensor> ssim_forward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& window,
                                        int64_t pad, double c1, double c2, bool need_factors) {
  const auto [ho, wo] = check_args(x, y, window, pad);
  const int64_t batch = x.size(0), channels = x.size(3);
  auto smap = torch::empty({batch, ho, wo}, x.options());
  const std::vector<int64_t> factor_shape = need_factors ? std::vector<int64_t>{3, batch, ho, wo, channels}
                                                         : std::vector<int64_t>{0};
  auto factors = torch::empty(factor_shape, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ssim_forward", [&] {
    forward_impl<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), window.data_ptr<scalar_t>(),
                           static_cast<int>(window.numel()), pad, static_cast<scalar_t>(c1),
                           static_cast<scalar_t>(c2), batch, x.size(1), x.size(2), channels,
                           smap.data_ptr<scalar_t>(), need_factors ? factors.data_ptr<scalar_t>() : nullptr);
  });
  return {smap, factors};
}

// Gradient [B, H, W, C] of sum(grad_map * map) in pred, from ssim_forward's factors.
torch::Tensor ssim_backward(const torch::Tensor& x, const torch::Tensor& y, const torch::Tensor& window, int64_t pad,
                            const torch::Tensor& factors, const torch::Tensor& grad_map) {
  const auto [ho, wo] = check_args(x, y, window, pad);
  const int64_t batch = x.size(0), channels = x.size(3);
  check_image(factors, "factors", x.scalar_type());
  check_image(grad_map, "grad_map", x.scalar_type());
  TORCH_CHECK(factors.sizes() == torch::IntArrayRef({3, batch, ho, wo, channels}), "factors must be [3, B, H', W', C]");
  TORCH_CHECK(grad_map.sizes() == torch::IntArrayRef({batch, ho, wo}), "grad_map must be [B, H', W']");
  auto grad_x = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ssim_backward", [&] {
    backward_impl<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), window.data_ptr<scalar_t>(),
                            static_cast<int>(window.numel()), pad, batch, x.size(1), x.size(2), channels,
                            factors.data_ptr<scalar_t>(), grad_map.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>());
  });
  return grad_x;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &ssim_forward, "SSIM map of channels-last images, and the factors of its gradient (CPU)");
  m.def("backward", &ssim_backward, "Gradient of the SSIM map in the prediction (CPU)");
}
