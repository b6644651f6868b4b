"""Visibility-aware fitness, local scan spacing and the floor estimate (fast; budget < 10 s)."""

import pytest
import torch

from splat.errors import SplatError
from splat.ops.chamfer import ChamferSettings
from splat.program import ShapeProgram
from splat.search import GenomeSpace, PlacementBox, ScanViews, expected_visible, population_fitness, synthetic_scan
from splat.search.fitness import local_spacing
from splat.search.genome import Population, estimate_floor
from test_search import BOX_GRAPH

W = H = 64
F = 100.0


def _top_view(size=0.4, cam_height=2.0):
    """One camera straight above a cube of edge ``size`` standing on z = 0: it sees only the top face."""
    vm = torch.tensor([[1.0, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, cam_height], [0, 0, 0, 1]])
    K = torch.tensor([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])
    z = cam_height - size
    uv = torch.arange(W) + 0.5
    inside = ((uv - W / 2).abs() * z / F <= size / 2)
    top = inside[None, :] & inside[:, None]
    depth = torch.where(top, torch.full((H, W), z), torch.zeros(H, W))
    return ScanViews(vm[None], K[None], depth[None], top[None])


def test_expected_visible_seen_hidden_free_and_out_of_frame():
    views = _top_view()
    pts = torch.tensor([[0.0, 0.0, 0.4],      # on the seen top face
                        [0.0, 0.0, 0.0],      # bottom face: behind the top face
                        [0.05, 0.0, 0.395],   # just under the top, within the 1 cm tolerance
                        [0.3, 0.0, 0.2],      # beside the cube: the view saw through it (free space)
                        [5.0, 0.0, 0.2],      # outside the frame
                        [0.0, 0.0, 3.0]])     # behind the camera
    assert expected_visible(pts, views).tolist() == [True, False, True, True, False, False]
    # Inside the mask without a depth reading is unknown: nothing there counts.
    holes = ScanViews(views.viewmats, views.Ks, torch.zeros_like(views.depths), views.masks)
    assert not expected_visible(pts[:1], holes).any()


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_points_seen_kernel_and_twin_agree(backend):
    """The C++ visibility kernel and its torch twin answer alike, on the hand-made cases above and on a
    cloud around a shipped scene's object seen by its 24 depth views (free space, hidden, out of frame)."""
    from splat.data import load_scene
    from splat.ops.mesh_raster import kernel_available, points_seen
    from splat.workspace import scene_dir

    if backend == "cpu" and not kernel_available():
        pytest.skip("C++ mesh raster kernel did not build")
    views = _top_view()
    pts = torch.tensor([[0.0, 0.0, 0.4], [0.0, 0.0, 0.0], [0.05, 0.0, 0.395], [0.3, 0.0, 0.2], [5.0, 0.0, 0.2],
                        [0.0, 0.0, 3.0]])
    got = points_seen(pts, views.viewmats, views.Ks, views.free_depth, views.tolerance, backend=backend)
    assert got.tolist() == [True, False, True, True, False, False]
    chair = ScanViews.from_scene(load_scene(scene_dir("chair")))
    gen = torch.Generator().manual_seed(0)
    cloud = (torch.rand(20000, 3, generator=gen) - 0.5) * torch.tensor([1.5, 1.5, 1.2]) + torch.tensor([0, 0, 0.45])
    got = points_seen(cloud, chair.viewmats, chair.Ks, chair.free_depth, chair.tolerance, backend=backend)
    ref = points_seen(cloud, chair.viewmats, chair.Ks, chair.free_depth, chair.tolerance, backend="torch")
    assert int(got.sum()) > 1000 and int((~got).sum()) > 50  # both answers occur (hidden: inside the parts)
    assert int((got != ref).sum()) <= 2  # float32 rounding at a pixel or depth boundary


def test_views_excuse_hidden_faces_but_not_extra_geometry():
    box = ShapeProgram.from_dict({"format": "splat.program/1", "name": "box", "graph": BOX_GRAPH})
    scan = synthetic_scan(box, {"Size": 0.4, "Has Box": True}, 4000, torch.Generator().manual_seed(0))
    scan = scan - torch.tensor([0.0, 0.0, float(scan[:, 2].min())])
    scan = scan[scan[:, 2] > 0.399]  # the camera above sees the top face only
    views = _top_view()
    gs = GenomeSpace(box.space, PlacementBox.from_scan(scan, yaw_range=0.0, floor=0.0))
    sizes = torch.tensor([[0.4], [0.5]])
    cont = torch.cat([(sizes - 0.1) / 0.9, torch.full((2, 4), 0.5, dtype=torch.float64)], 1)
    pop = gs.canonical(Population(torch.ones(2, 1, dtype=torch.int64), cont[:, : gs.n_cont]))
    s = ChamferSettings(squared=False, direction="x_to_y", x_margin=0.01)
    blind = population_fitness(box, gs, pop, scan, 4000, torch.Generator().manual_seed(1), s)
    seen = population_fitness(box, gs, pop, scan, 4000, torch.Generator().manual_seed(1), s, views=views)
    assert float(blind[0]) > 0.05  # without views the unseen bottom and sides are charged
    assert float(seen[0]) < 1e-3  # with views the true cube explains everything it should
    assert float(seen[1]) > 10 * float(seen[0])  # a bigger cube pokes into seen free space


def test_scan_views_validate_shapes():
    v = _top_view()
    with pytest.raises(SplatError, match="Ks"):
        ScanViews(v.viewmats, v.Ks[0], v.depths)
    with pytest.raises(SplatError, match="masks"):
        ScanViews(v.viewmats, v.Ks, v.depths, v.masks[:, :10])


def test_local_spacing_follows_density():
    g = torch.Generator().manual_seed(0)
    dense = torch.rand(4000, 3, generator=g) * torch.tensor([1.0, 1.0, 0.0])
    sparse = torch.rand(250, 3, generator=g) * torch.tensor([1.0, 1.0, 0.0]) + torch.tensor([2.0, 0.0, 0.0])
    s = local_spacing(torch.cat([dense, sparse]))
    assert s[:4000].median() * 3 < s[4000:].median()
    # Even density: close to the global median nearest-neighbour spacing.
    nn = torch.cdist(dense, dense).topk(2, largest=False).values[:, 1]
    assert abs(float(s[:4000].median()) / float(nn.median()) - 1) < 0.15


def test_floor_ignores_isolated_outliers_but_not_sparse_feet():
    g = torch.Generator().manual_seed(1)
    body = torch.rand(5000, 3, generator=g) * torch.tensor([1.0, 1.0, 0.0]) + torch.tensor([0.0, 0.0, 0.5])
    foot = torch.tensor([0.1, 0.1, 0.0]) + torch.rand(40, 3, generator=g) * torch.tensor([0.02, 0.02, 0.5])
    outlier = torch.tensor([[0.5, 0.5, -0.3]])
    floor = float(estimate_floor(torch.cat([body, foot, outlier])))
    assert 0.0 <= floor < 0.03
