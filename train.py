"""``python train.py --scene chair``: the same as ``splat train --scene chair`` (see splat/commands/train.py)."""

import sys

from splat.cli import run_cli
from splat.commands.train import main

if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:], prog="python train.py"))
