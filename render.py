"""Render, edit and sweep a trained object: ``python render.py outputs/chair/<run> --set "Seat Height=0.6"``.

See splat/viewer/cli.py (options: ``python render.py --help``). Export editable assets with
``python -m splat.export RUN_DIR``.
"""

from splat.cli import run_cli
from splat.viewer.cli import main

if __name__ == "__main__":
    run_cli(main)
