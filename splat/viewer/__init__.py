"""The editor in the browser (``splat view RUN``): a viser app with a control per program parameter.

- :mod:`splat.viewer.controls` — parameter -> control (slider, integer slider, dropdown, checkbox),
  grouped by the ParamSpace's groups, with hints; widget value <-> parameter value (clamped).
- :mod:`splat.viewer.session` — :class:`EditSession`: the fitted asset, the values being edited, and the
  world Gaussians they give (:class:`SplatFrame`), re-evaluated and pushed forward on every edit.
- :mod:`splat.viewer.app` — :class:`EditorApp`: the viser server (Gaussian splats, program mesh and
  training cameras as toggles, the controls, reset / random variant / export).
- ``splat view RUN`` (splat/commands/view.py) — the command.

Importing this package never needs viser: the app imports it when it starts (:func:`require_viser`
raises :class:`~splat.errors.SplatError` naming the ``viewer`` extra when it is missing).
"""

from __future__ import annotations

from splat.viewer.app import VIEWER_EXTRA_HINT, EditorApp, ViewerSettings, require_viser
from splat.viewer.controls import ParamControl, controls_for, groups, param_value, ui_value
from splat.viewer.session import EditSession, SplatFrame, untrained_values

__all__ = [
    "VIEWER_EXTRA_HINT",
    "EditSession",
    "EditorApp",
    "ParamControl",
    "SplatFrame",
    "ViewerSettings",
    "controls_for",
    "groups",
    "param_value",
    "require_viser",
    "ui_value",
    "untrained_values",
]
