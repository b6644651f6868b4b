"""The edge check (splat.train.edges): photos choose among fits the depth scan cannot tell apart."""

from __future__ import annotations

import math

import pytest
import torch

from splat.program import load_program
from splat.train.edges import EdgeScorer, edge_check, edge_samples, feature_edges
from train_fixtures import _look_at_viewmat

F64 = torch.float64
TRUTH = {"Width": 0.5, "Depth": 0.8, "Height": 0.6, "Board Thickness": 0.02, "Has Back": True, "Has Legs": False,
         "Interior": 1, "Drawer Count": 4, "Top Drawer Ratio": 0.5}
TRUE_YAW = -math.pi / 2  # the drawers face -x


def test_feature_edges_of_a_cube_are_its_twelve_edges():
    geo = load_program("cabinet").evaluate({"Interior": 0, "Shelf Count": 1, "Has Back": False}, dtype=F64)
    rm = geo.realize()
    verts, faces = rm.verts[0], rm.faces[rm.face_active[0]]
    edges = feature_edges(verts, faces)
    # every part here is a box: 12 feature edges each (the triangulation's diagonals are flat, left out)
    boxes = sum(int(p.active[0]) for p in geo.parts)
    assert boxes == 5 and edges.shape[0] == 12 * boxes
    length = (verts[edges[:, 0]] - verts[edges[:, 1]]).norm(dim=1)
    pts = edge_samples(verts, edges, 0.01)
    assert pts.shape[0] == int(torch.ceil(length / 0.01).sum())


def _scene(size: int = 128, n: int = 10):
    """Train data of the truth cabinet seen from a ring of cameras, drawn by z-buffered dense surface
    points: carcass grey, drawer fronts alternately light and lighter (the shadow lines between real
    fronts), handles black. The depth scan is the exact surface (it sees no gap between fronts)."""
    import numpy as np

    from splat.maths import placement_matrix
    from splat.ops import sample_surface
    from splat.train.data import TrainData

    program = load_program("cabinet")
    placement = placement_matrix(torch.zeros(3, dtype=F64), torch.tensor(TRUE_YAW, dtype=F64), torch.tensor(0.0, dtype=F64))
    geo = program.evaluate(TRUTH, dtype=F64).transformed(placement[None])
    rm = geo.realize()
    surf = sample_surface(rm.verts, rm.faces, 300_000, torch.Generator().manual_seed(0), face_active=rm.face_active)
    pts = surf.points[0].numpy()
    part = rm.face_part[surf.face_idx[0]].numpy()
    active = [p for p in geo.parts]
    shade = np.full(len(active), 0.4)
    fronts = 0
    for k, p in enumerate(active):
        if p.key.node in ("Drawer Handle", "Top Drawer Handle"):
            shade[k] = 0.05
        elif p.key.node in ("Drawer Front", "Top Drawer Front"):
            shade[k] = 0.75 if fronts % 2 == 0 else 0.9
            fronts += 1
    grey = shade[part]
    f = 0.5 * size / math.tan(math.radians(40) / 2)
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]])
    images, depths, masks, viewmats = [], [], [], []
    for i in range(n):
        az = 2 * math.pi * i / n + 0.3
        eye = (1.7 * math.cos(az), 1.7 * math.sin(az), 1.2)
        vm = np.asarray(_look_at_viewmat(eye, (0.0, 0.0, 0.3)), dtype=np.float64)
        pc = pts @ vm[:3, :3].T + vm[:3, 3]
        uv = pc[:, :2] / pc[:, 2:] * [f, f] + K[:2, 2]
        col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        ok = (col >= 0) & (col < size) & (row >= 0) & (row < size) & (pc[:, 2] > 0.1)
        pix, z, g = row[ok] * size + col[ok], pc[ok, 2], grey[ok]
        order = np.lexsort((z, pix))  # nearest point first within each pixel
        pix, z, g = pix[order], z[order], g[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        depth = np.zeros(size * size)
        image = np.ones(size * size)
        depth[pix[first]] = z[first]
        image[pix[first]] = g[first]
        images.append(torch.tensor(image.reshape(size, size))[..., None].expand(-1, -1, 3))
        depths.append(torch.tensor(depth.reshape(size, size)))
        masks.append(torch.tensor(depth.reshape(size, size) > 0))
        viewmats.append(torch.tensor(vm))
    scan = surf.points[0][torch.randperm(len(pts), generator=torch.Generator().manual_seed(1))[:20000]]
    data = TrainData(images=torch.stack(images).float(), masks=torch.stack(masks), depths=torch.stack(depths).float(),
                     viewmats=torch.stack(viewmats).float(), Ks=torch.tensor(K).float().expand(n, 3, 3).clone(),
                     scan=scan.float(), background=torch.ones(3), width=size, height=size, floor=0.0)
    return program, data


@pytest.fixture(scope="module")
def cabinet_scene():
    return _scene()


def test_edge_score_prefers_the_true_drawers(cabinet_scene):
    from splat.maths import placement_matrix

    program, data = cabinet_scene
    scorer = EdgeScorer(data)

    def score(assignment, yaw):
        pl = placement_matrix(torch.zeros(3, dtype=F64), torch.tensor(yaw, dtype=F64), torch.tensor(0.0, dtype=F64))
        return scorer(program, assignment, pl)

    truth = score(TRUTH, TRUE_YAW)
    turned = score({**TRUTH, "Width": 0.8, "Depth": 0.5}, 0.0)  # drawers on a long, blank face
    behind = score(TRUTH, TRUE_YAW + math.pi)  # drawers on the other short face
    fewer = score({**TRUTH, "Drawer Count": 2}, TRUE_YAW)
    assert truth > max(turned, behind, fewer), (truth, turned, behind, fewer)


@pytest.mark.slow
def test_edge_check_turns_a_winner_whose_drawers_face_the_wrong_way(cabinet_scene):
    """A winner with its drawers on a long, blank face and one drawer too few (as the depth-only search
    returns on a capture) is turned to the face that has them; with a margin of 0.1 the drawer lines
    (alternating fronts) also recount it."""
    import dataclasses

    from splat.maths import decompose_placement, placement_matrix
    from splat.search import SearchSettings
    from splat.search.refine import RefineSettings

    program, data = cabinet_scene
    wrong = {**TRUTH, "Width": 0.8, "Depth": 0.5, "Drawer Count": 3}
    placement = placement_matrix(torch.zeros(3, dtype=F64), torch.tensor(0.0, dtype=F64), torch.tensor(0.0, dtype=F64))
    settings = dataclasses.replace(SearchSettings(), polish=RefineSettings(steps=10, lr=0.01, samples=1024),
                                   compare_samples=4096, final_target_points=4096)
    settings = dataclasses.replace(settings, placement=dataclasses.replace(settings.placement, floor=0.0))
    assignment, pl, info = edge_check(program, wrong, placement, data, settings, None, margin=0.1)
    assert info["chosen"].split(",")[0] in ("turned 90", "turned 270") and info["turns"] >= 2, info
    _, yaw, _ = decompose_placement(pl)
    front = torch.stack([torch.sin(yaw), -torch.cos(yaw)])  # Rz(yaw) @ (0, -1): where the drawers face
    assert float(front @ torch.tensor([-1.0, 0.0], dtype=F64)) > 0.99, (float(yaw), info)
    assert abs(assignment["Width"] - 0.5) < 0.02 and abs(assignment["Depth"] - 0.8) < 0.02, assignment
    assert assignment["Drawer Count"] == 4 and assignment["Interior"] == 1, (assignment, info)
    # by default no recount is taken: the turn is still chosen by its best neighbour's edges, and the
    # winner's discrete parameters stay
    kept, pl2, info2 = edge_check(program, wrong, placement, data, settings, None)
    _, yaw2, _ = decompose_placement(pl2)
    assert float(torch.stack([torch.sin(yaw2), -torch.cos(yaw2)]) @ torch.tensor([-1.0, 0.0], dtype=F64)) > 0.99, info2
    assert kept["Drawer Count"] == 3 and info2["chosen"] in ("turned 90", "turned 270"), info2
