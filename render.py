"""``python render.py RUN``: the same as ``splat render RUN`` (see splat/commands/render.py)."""

from splat.cli import run_cli
from splat.commands.render import main

if __name__ == "__main__":
    run_cli(main)
