"""Building and loading the project's C++ CPU kernels (one loader for all of them).

Each kernel is compiled from its source file on first use with ``torch.utils.cpp_extension.load``
(``-O3 -march=native``, threads are plain std::threads) and cached in torch's extension folder
(``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``); later processes load the cached
build in well under a second. If the build fails, one warning names what falls back to what, and the
loader returns None (once per process and kernel).
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path


@functools.cache
def load_extension(name: str, source: Path, what: str, fallback: str):
    """The built extension module ``name`` from ``source``, or None with one warning if it cannot be built.

    ``what`` and ``fallback`` complete the warning: "could not build <what> (...); using <fallback>".
    """
    try:
        from torch.utils.cpp_extension import load

        return load(
            name=name,
            sources=[os.fspath(source)],
            extra_cflags=["-O3", "-march=native", "-fno-math-errno", "-std=c++17"],
            extra_ldflags=["-pthread"],
            verbose=False,
        )
    except Exception as err:  # any compiler / toolchain failure
        msg = str(err).strip().splitlines()
        warnings.warn(f"splat: could not build {what} ({msg[-1] if msg else type(err).__name__}); using {fallback}",
                      RuntimeWarning, stacklevel=3)
        return None
