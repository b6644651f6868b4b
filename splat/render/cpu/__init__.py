"""The "cpu" backend: C++ multi-threaded tile rasterizer (forward and backward written by hand).

The extension is compiled from ``rasterize.cpp`` on first use with ``torch.utils.cpp_extension.load``
(-O3 -march=native; threads over tiles with std::thread, as many as ``torch.get_num_threads()``) and cached in torch's extension folder (``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``); later processes load the cached build in well under a second. Nothing is
built at install time. If the build fails, one warning is issued and ``kernel_available()`` is False, so
``rasterize`` falls back to the "torch" backend.
"""

from splat.render.cpu._function import kernel_available, load_kernel, rasterize_to_pixels

__all__ = ["kernel_available", "load_kernel", "rasterize_to_pixels"]
