"""The CLI convention shared by every entry point (`splat COMMAND`, train.py, render.py).

A user-caused error (:class:`splat.errors.SplatError`) prints exactly one line,
``error: <file>: <field>: <message>``, to stderr and exits with status 2, without a traceback.
Anything else is a bug and keeps its traceback. Ctrl-C exits with 130 and no traceback.
"""

from __future__ import annotations

import sys
from typing import Callable, TypeVar

from splat.errors import SplatError

T = TypeVar("T")

EXIT_USER_ERROR = 2


def run_cli(main: Callable[[], T]) -> T:
    """Call ``main()`` under the project's CLI error convention and return its result."""
    try:
        return main()
    except SplatError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
