"""splat.capture isolation and depth check on an analytic capture whose floor, object, occluder and
distractor are known exactly (tests/capture_fixtures.py): the floor frame, the object's extents and
scan, the masks against the true ones (occlusion by a post included), the crop box, and the per-frame
depth check dropping a frame whose pose is off.

Budget: ~3 s (16 frames of 80x60, isolated a few times).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import capture_fixtures as cf
from splat.capture import (DepthCheckSettings, IsolateSettings, check_depth, isolate_object, list_capture,
                           object_mask, read_frame)
from splat.capture.frames import CaptureFrame, transform_points
from splat.errors import SplatError

N = 16


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    root = tmp_path_factory.mktemp("cap") / "tum"
    cap = cf.write_tum_cubeslam(root, N)
    frames = [read_frame(r) for r in list_capture("tum", root).frames]
    return cap, frames


@pytest.fixture(scope="module")
def isolation(capture):
    return isolate_object(capture[1], IsolateSettings())


def _box_distance(p: np.ndarray, lo, hi) -> np.ndarray:
    """Distance of points to the surface of an axis-aligned box."""
    outside = np.linalg.norm(np.maximum(np.maximum(lo - p, p - hi), 0.0), axis=1)
    inside = np.min(np.minimum(p - lo, hi - p), axis=1)
    return np.where(outside > 0, outside, inside)


def test_floor_frame_is_the_true_one_up_to_a_half_turn(isolation):
    iso = isolation
    np.testing.assert_allclose(iso.floor.normal, cf.CAPTURE_FROM_FLOOR[:3, 2], atol=1e-3)
    m = iso.to_floor @ cf.CAPTURE_FROM_FLOOR  # truth floor frame -> recovered floor frame
    np.testing.assert_allclose(m[2, :3], [0, 0, 1], atol=1e-3)  # same up
    assert abs(m[2, 3]) < 1e-3  # floor at z = 0
    assert abs(abs(m[0, 0]) - 1) < 1e-3  # long side along X (the box is centred: either way round)
    np.testing.assert_allclose(m[:2, 3], 0.0, atol=5e-3)  # object centred at the origin
    assert iso.mode == "auto"


def test_object_extents_and_scan_on_the_box(isolation):
    iso = isolation
    p = iso.points
    lo, hi = np.percentile(p, 1, axis=0), np.percentile(p, 99, axis=0)
    np.testing.assert_allclose([hi[0] - lo[0], hi[1] - lo[1], hi[2]], [0.8, 0.5, 0.6], atol=0.015)
    truth = transform_points(np.linalg.inv(iso.to_floor @ cf.CAPTURE_FROM_FLOOR), p)  # back into F
    assert np.max(_box_distance(truth, cf.OBJECT_LO, cf.OBJECT_HI)) < 0.02  # no floor, post or cube


def test_masks_match_the_true_object_with_occlusion(capture, isolation):
    cap, frames = capture
    occluded = 0
    for frame, view in zip(frames, cap.views):
        mask = object_mask(frame, isolation, IsolateSettings())
        truth = view.hit == 1
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou > 0.9, (frame.name, iou)
        assert not np.any(mask & (view.hit >= 2))  # neither the post in front nor the distractor
        occluded += int(np.any(view.hit == 3))
    assert occluded >= 2  # the post does hide part of the object in some views


def test_crop_box_isolates_what_it_holds(capture):
    cap, frames = capture
    corners = np.array([[1.95, 1.15, -0.05], [2.45, 1.65, 0.5]])  # around the distractor cube, in F
    w = transform_points(cf.CAPTURE_FROM_FLOOR, corners)
    box = tuple(np.minimum(w[0], w[1])) + tuple(np.maximum(w[0], w[1]))  # the capture world's axes
    iso = isolate_object(frames, IsolateSettings(crop=box))
    assert iso.mode == "crop"
    truth = transform_points(np.linalg.inv(iso.to_floor @ cf.CAPTURE_FROM_FLOOR), iso.points)  # back into F
    lo, hi = cf.BOXES[1][:2]
    assert np.max(_box_distance(truth, lo, hi)) < 0.02  # only the cube (seen from one side: part of it)
    np.testing.assert_allclose([*truth.min(0)[:2], truth.max(0)[2]], [lo[0], lo[1], hi[2]], atol=0.02)
    with pytest.raises(SplatError, match=r"--crop: the crop box .* holds no point of the fused depth"):
        isolate_object(frames, IsolateSettings(crop=(50.0, 50.0, 50.0, 51.0, 51.0, 51.0)))
    floor_only = transform_points(cf.CAPTURE_FROM_FLOOR, np.array([[-1.5, -1.5, -0.05], [-1.0, -1.0, 0.01]]))
    box = tuple(floor_only.min(0)) + tuple(floor_only.max(0))
    with pytest.raises(SplatError, match="--crop: the crop box .* holds only floor points"):
        isolate_object(frames, IsolateSettings(crop=box))


def test_auto_without_an_object_fails_clearly(capture, monkeypatch):
    cap, frames = capture
    monkeypatch.setattr(cf, "BOXES", ())
    empty = [f.replace(depth=cf.render(pf, f.K, f.width, f.height).depth.astype(np.float32))
             for f, pf in zip(frames, cap.poses_floor)]
    with pytest.raises(SplatError, match="--auto: nothing above the floor"):
        isolate_object(empty, IsolateSettings())


def test_depth_check_drops_the_frame_whose_pose_is_off(tmp_path):
    tilt = np.eye(4)
    a = math.radians(1.5)
    tilt[:3, :3] = [[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]]
    root = tmp_path / "tum"
    cf.write_tum_cubeslam(root, N, bad={5: np.array([0.02, -0.03, 0.0])})
    frames = [read_frame(r) for r in list_capture("tum", root).frames]
    frames[9] = frames[9].replace(c2w=frames[9].c2w @ tilt)  # a second one: turned by 1.5 degrees
    check = check_depth(frames)
    assert sorted(check.dropped) == [5, 9]
    assert check.threshold == pytest.approx(0.01)  # exact depth: the 1 cm floor of the threshold
    # scores are taken with every frame present: the bad frames' neighbours share their disagreement,
    # which is why frames are dropped worst first and the rest re-scored without them
    assert np.median(check.scores) < 0.002 and np.all(np.array(check.dropped_scores) > 0.015)
    # an explicit threshold above the errors keeps every frame
    assert check_depth(frames, DepthCheckSettings(threshold=0.2)).dropped == ()


def test_depth_check_leaves_a_consistent_capture_alone(capture):
    check = check_depth(capture[1])
    assert check.dropped == () and np.all(check.scores < 0.002)


def test_frames_need_overlap_to_be_scored():
    f = CaptureFrame("a", 0, np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32),
                     np.array([[4.0, 0, 2], [0, 4.0, 2], [0, 0, 1]]), np.eye(4))
    assert check_depth([f, f.replace(name="b")]).dropped == ()  # fewer than 3 frames: nothing to compare


def test_colour_moves_a_shifted_depth_silhouette_back_onto_the_object():
    from splat.capture.isolate import refine_by_colour

    rgb = np.full((60, 80, 3), 200, np.uint8)
    rgb[20:40, 30:55] = (40, 40, 90)  # a dark object on a light floor
    rgb[25, 40] = (200, 200, 200)  # a highlight the colour of the floor, inside the object
    truth = np.zeros((60, 80), bool)
    truth[20:40, 30:55] = True
    shifted = np.roll(truth, (2, 2), axis=(0, 1))  # the depth's silhouette, 2 px off
    refined = refine_by_colour(rgb, shifted, 3)
    np.testing.assert_array_equal(refined, truth)  # the highlight's pinhole is closed again
    ambiguous = np.full((60, 80, 3), 120, np.uint8)  # no colour difference: the depth's mask stands
    np.testing.assert_array_equal(refine_by_colour(ambiguous, shifted, 3), shifted)


def test_colour_outline_wins_over_a_depth_registered_two_pixels_off(capture, isolation):
    """A Kinect's depth sits a pixel or two off its colour image: where the photo shows the object but
    the (shifted) depth reads the floor behind it, colour may still add the pixel (``colour_trust``)."""
    cap, frames = capture
    gains = []
    for frame, view in zip(frames, cap.views):
        if np.any(view.hit >= 2):
            continue  # occluder or distractor in view: not this test's business
        truth = view.hit == 1
        shifted = frame.replace(depth=np.roll(frame.depth, (-2, 2), axis=(0, 1)))

        def iou(settings):
            m = object_mask(shifted, isolation, settings)
            return (m & truth).sum() / (m | truth).sum()

        depth_only = iou(IsolateSettings(colour_band=0))
        trusted = iou(IsolateSettings(colour_trust=2, colour_passes=2))
        untrusted = iou(IsolateSettings())  # the default: colour adds no pixel the depth disagrees with
        assert trusted >= untrusted - 1e-9 and trusted > depth_only
        gains.append(trusted - untrusted)
    assert len(gains) >= 3 and np.mean(gains) > 0.01
