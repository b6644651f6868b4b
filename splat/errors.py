"""The project's error type for problems a user can cause.

Every error that a user can cause (a bad path, malformed JSON, an image of the wrong size, NaN depth, an
unknown node type, an out-of-range parameter) is raised as :class:`SplatError`, naming the offending
file and field. Command-line entry points catch it, print one line and exit with status 2 (see
:func:`splat.cli.run_cli`). Programming errors (bugs) stay ordinary Python exceptions.
"""

from __future__ import annotations

import os


class SplatError(Exception):
    """A user-caused error, naming the file and the field at fault.

    Args:
        message: what is wrong, in one sentence, and when useful what would be right.
        file: the file (or folder) at fault, if any.
        field: the field inside the file (a JSON key path such as ``frames[3].file_path``, a parameter
            name, a node name), if any.

    ``str(err)`` is ``"<file>: <field>: <message>"`` with absent parts left out, so the one line a CLI
    prints says where to look.
    """

    def __init__(self, message: str, *, file: str | os.PathLike | None = None, field: str | None = None):
        self.message = message
        self.file = None if file is None else os.fspath(file)
        self.field = field
        super().__init__(self._format())

    def _format(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def __reduce__(self):  # keep file/field through pickling (multiprocessing, DataLoader workers)
        return (_rebuild, (self.message, self.file, self.field))


def _rebuild(message, file, field):
    return SplatError(message, file=file, field=field)
