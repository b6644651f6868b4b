"""``splat view`` in a real browser: headless Chromium (Debian's ``chromium``, software WebGL) driven by
Playwright opens the editor, finds the "Seat Height" control and drags it; on the server the parameter
and the Gaussians change, and the 3D view (the canvas, left of the control panel) is not blank and
differs before and after.

Skips, saying why, without the ``viewer`` extra (viser), without Playwright (``pip install playwright``;
its own browser download is not used) or without a Chromium binary (``apt-get install chromium``, or set
SPLAT_CHROMIUM to one). Budget: ~10-20 s (browser start, software rendering).
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import time

import numpy as np
import pytest
from export_helpers import make_run

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("SPLAT_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# software WebGL (no GPU in CI): ANGLE on SwiftShader
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--no-sandbox"]


def _requirements() -> str | None:
    if importlib.util.find_spec("viser") is None:
        return "needs the `viewer` extra (viser)"
    if importlib.util.find_spec("playwright") is None:
        return "needs Playwright (pip install playwright)"
    if not CHROMIUM:
        return "needs a Chromium binary (apt-get install chromium, or SPLAT_CHROMIUM=/path/to/chromium)"
    return None


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    why = _requirements()
    if why:
        pytest.skip(why)
    from splat.commands.view import ViewConfig, start

    run = make_run(tmp_path_factory.mktemp("view_browser") / "run", num=600)
    app = start(ViewConfig(run=run, port=0, cameras=False, export_formats=("assets",)))
    yield app
    app.close()


def _wait(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_drag_seat_height_in_chromium(app):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    before_params = dict(app.session.params)
    before_centers = app.session.frame.centers.copy()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            page.goto(app.url)
            label = page.locator("label", has_text="Seat Height")
            label.wait_for(timeout=60_000)
            close = page.locator(".mantine-Notification-closeButton")  # "software WebGL" notice
            for i in range(close.count()):
                close.nth(i).click()
            slider = page.locator(f"[id='{label.get_attribute('for')}']")
            thumb = slider.locator("[role=slider]")
            assert float(thumb.get_attribute("aria-valuenow")) == pytest.approx(0.45)
            panel_left = int(label.bounding_box()["x"]) - 40
            canvas = page.locator("canvas").first

            def view() -> np.ndarray:  # the 3D view left of the control panel
                img = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"), dtype=np.float64)
                return img[:, :panel_left]

            _wait(lambda: (view() < 200).any(axis=-1).mean() > 0.01, 30, "the Gaussians to be drawn")
            time.sleep(0.5)
            shot0 = view()
            assert shot0.std() > 5 and (shot0 < 200).any(axis=-1).mean() > 0.01, "blank view"

            # drag the thumb to 90% of the track
            track = slider.locator(".mantine-Slider-track").bounding_box()
            box = thumb.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            y = track["y"] + track["height"] / 2
            page.mouse.move(track["x"] + 0.9 * track["width"], y, steps=8)
            page.mouse.up()
            shown = float(thumb.get_attribute("aria-valuenow"))
            assert shown > 0.6

            # the server has the parameter and moved the Gaussians
            _wait(lambda: app.session.params["Seat Height"] == pytest.approx(shown, abs=1e-9), 20,
                  "the server to apply the slider's value")
            assert {k: v for k, v in app.session.params.items() if k != "Seat Height"} == {
                k: v for k, v in before_params.items() if k != "Seat Height"}
            after_centers = app.session.frame.centers
            assert after_centers.shape == before_centers.shape
            assert np.abs(after_centers[:, 2] - before_centers[:, 2]).max() > 0.1  # the seat rose ~0.2 m

            # and the browser drew the new Gaussians
            _wait(lambda: np.abs(view() - shot0).mean() > 2.0, 30, "the 3D view to change")
            shot1 = view()
            assert shot1.std() > 5 and (shot1 < 200).any(axis=-1).mean() > 0.01, "blank view after the edit"
        finally:
            browser.close()
