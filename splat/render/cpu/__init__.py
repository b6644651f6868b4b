"""The "cpu" backend: C++ multi-threaded kernels, forward and backward written by hand.

Two extensions, each compiled from its source on first use with ``torch.utils.cpp_extension.load``
(-O3 -march=native; threads are std::threads, as many as ``torch.get_num_threads()``) and cached in
torch's extension folder (``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``); later
processes load the cached builds in well under a second. Nothing is built at install time.

- ``rasterize.cpp``: the tile rasterizer. If its build fails, one warning is issued and
  ``kernel_available()`` is False, so ``rasterize`` falls back to the "torch" backend.
- ``project.cpp``: the fused EWA projection with the input checks, and the SH colours; also the
  procedural Gaussians' pushforward to world space (``pushforward_fused``). If its build fails, one
  warning is issued and ``projection_available()`` is False, so the cpu backend and
  ``ProceduralGaussians.pushforward`` do those with PyTorch.
"""

from splat.render.cpu._function import kernel_available, load_kernel, rasterize_to_pixels
from splat.render.cpu._project import (
    SH_MAX_DEGREE,
    InputReport,
    WorldTensors,
    project_fused,
    projection_available,
    pushforward_fused,
    sh_colors_fused,
)

__all__ = ["SH_MAX_DEGREE", "InputReport", "WorldTensors", "kernel_available", "load_kernel", "project_fused",
           "projection_available", "pushforward_fused", "rasterize_to_pixels", "sh_colors_fused"]
