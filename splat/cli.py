"""The CLI convention shared by every entry point (`splat COMMAND`, train.py, render.py).

A user-caused error (:class:`splat.errors.SplatError`) prints exactly one line,
``error: <file>: <field>: <message>``, to stderr and exits with status 2, without a traceback. So does
a full disk (an OSError with errno ENOSPC, EDQUOT or EFBIG, e.g. from a writer thread such as
TensorBoard's). Anything else is a bug and keeps its traceback. Ctrl-C exits with 130 and no traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

from splat.errors import SplatError
from splat.io import DISK_FULL_ERRNOS

T = TypeVar("T")

EXIT_USER_ERROR = 2


def run_cli(main: Callable[[], T]) -> T:
    """Call ``main()`` under the project's CLI error convention and return its result."""
    try:
        return main()
    except SplatError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
    except OSError as err:
        if err.errno not in DISK_FULL_ERRNOS:
            raise
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}cannot write ({os.strerror(err.errno).lower()})", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
