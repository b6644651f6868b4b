"""``python -m splat COMMAND ...``: the same as the ``splat`` console command."""

from splat.commands import console

console()
