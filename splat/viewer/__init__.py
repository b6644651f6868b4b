"""Viewing a trained, editable object: orbit and file cameras, RGB / colour-mapped depth / alpha
renders, panels, MP4/GIF videos, and parameter edits from the command line (the logic behind
``render.py``; see :mod:`splat.viewer.cli`)."""
