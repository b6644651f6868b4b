"""``python -m splat.export RUN_DIR [--set NAME=VALUE ...] [--out DIR] [--formats ...]``."""

from splat.cli import run_cli
from splat.export.run import main

run_cli(main)
