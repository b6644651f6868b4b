"""Program geometry as an instanced glTF binary (.glb) via trimesh: one mesh per canonical primitive,
one node per copy.

Convention: every canonical primitive (a :class:`splat.geonodes.PrimitiveKey`) becomes one glTF mesh
holding its canonical vertices (unit size, Blender's vertex order) and one material whose base colour
is the mean colour of the Gaussians on that primitive (sRGB, as the images; written linear, as glTF
wants). Every active part becomes a node that references
its primitive's mesh, with node matrix ``part.transform @ [S 0; 0 1]`` (S = the part's shape map), so
copies (the four legs) share one mesh. Cones whose radii differ are not an affine image of a canonical
mesh: each such part gets a mesh of its own with its exact local vertices (node matrix =
``part.transform``). Point parts have no surface and are skipped.

glTF is +Y up and our world is +Z up (Blender's): all part nodes hang under one root node
``"z_up_to_y_up"`` that rotates +Z to +Y, exactly what Blender's glTF importer undoes, so the object
stands upright in glTF viewers and comes back into Blender in its own coordinates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple

import numpy as np
import torch

from splat.errors import SplatError
from splat.maths import sh_dc_to_rgb
from splat.io import write_bytes_atomic

if TYPE_CHECKING:
    from splat.gaussians import WorldGaussians
    from splat.geonodes import Geometry


ROOT_NODE = "z_up_to_y_up"
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])
"""[4, 4] (x, y, z) -> (x, z, -y): Blender world (+Z up) to glTF (+Y up)."""
DEFAULT_COLOR = (0.7, 0.7, 0.7)


class GlbSummary(NamedTuple):
    """What :func:`write_glb` wrote."""

    path: Path
    meshes: int  # glTF meshes (distinct canonical primitives, plus one per non-affine cone part)
    nodes: int  # part nodes (one per active part with a surface)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (the IEC 61966-2-1 curve); glTF colour factors are linear."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def key_name(key: Any) -> str:
    """A readable, unique mesh name for a primitive key: ``Tree/Node`` plus topology when needed."""
    topo = "x".join(str(t) for t in getattr(key, "topology", ()))
    return f"{key.tree}/{key.node}" + (f"[{topo}]" if topo else "")


def part_colors(geometry: "Geometry", world: "WorldGaussians") -> dict[Any, tuple[float, float, float]]:
    """Mean colour per primitive key of the Gaussians on its copies, opacity-weighted.

    Args:
        geometry: the Geometry the Gaussians were pushed through.
        world: :class:`splat.gaussians.WorldGaussians` (``sh`` [M, K, 3], ``opacities`` [M], ``part`` [M]).
    Returns ``{key: (r, g, b)}`` in [0, 1] for keys that have Gaussians (view-independent DC colour).
    """
    if world.means.shape[0] == 0:
        return {}
    rgb = sh_dc_to_rgb(world.sh[:, 0, :].detach().double()).clamp(0, 1)  # [M, 3]
    w = world.opacities.detach().double().clamp_min(1e-6)
    keys = [p.key for p in geometry.parts]
    key_index = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    part_to_key = torch.tensor([key_index[k] for k in keys], dtype=torch.long)
    kid = part_to_key[world.part.cpu()]
    n = len(key_index)
    num = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, kid, rgb.cpu() * w.cpu()[:, None])
    den = torch.zeros(n, dtype=torch.float64).index_add_(0, kid, w.cpu())
    out = {}
    for k, i in key_index.items():
        if den[i] > 0:
            out[k] = tuple(float(x) for x in (num[i] / den[i]))
    return out


def geometry_scene(geometry: "Geometry", colors: Mapping[Any, tuple[float, float, float]] | None = None,
                   *, batch_index: int = 0):
    """A ``trimesh.Scene`` of ``geometry`` (one batch element), instanced as described above."""
    import trimesh
    from trimesh.visual.material import PBRMaterial

    colors = colors or {}
    scene = trimesh.Scene(base_frame="world")
    scene.graph.update(frame_from="world", frame_to=ROOT_NODE, matrix=Z_UP_TO_Y_UP)
    meshes: dict[Any, str] = {}
    used_names: set[str] = set()

    def unique(name: str) -> str:
        base, k = name, 1
        while name in used_names:
            name, k = f"{base}.{k:03d}", k + 1
        used_names.add(name)
        return name

    def make_mesh(name: str, verts: np.ndarray, faces: np.ndarray, key: Any):
        rgb = srgb_to_linear(np.asarray(colors.get(key, DEFAULT_COLOR), dtype=np.float64))
        mat = PBRMaterial(name=f"{name}", baseColorFactor=[*(int(round(255 * c)) for c in rgb), 255],
                          metallicFactor=0.0, roughnessFactor=0.8)
        mesh = trimesh.Trimesh(vertices=verts, faces=faces, process=False,
                               visual=trimesh.visual.TextureVisuals(material=mat))
        scene.add_geometry(mesh, geom_name=name, parent_node_name=None)
        # add_geometry also adds a node; drop it, nodes are made per part below
        for node in [n for n in scene.graph.nodes_geometry if scene.graph[n][1] == name]:
            scene.graph.transforms.remove_node(node)
        return name

    n_nodes = 0
    copy_count: dict[Any, int] = {}
    for part in geometry.parts:
        key = part.key
        can = part.canonical
        if can.faces.numel() == 0:
            continue
        c = copy_count.get(key, 0)
        copy_count[key] = c + 1
        if not bool(part.active[batch_index]):
            continue
        M = part.transform[batch_index].detach().double().cpu().numpy()
        faces = can.faces.cpu().numpy()
        if part.affine:
            if key not in meshes:
                meshes[key] = make_mesh(unique(key_name(key)), can.verts.double().cpu().numpy(), faces, key)
            S = np.eye(4)
            S[:3, :3] = part.shape_map[batch_index].detach().double().cpu().numpy()
            matrix, geom = M @ S, meshes[key]
        else:
            local = part.local_verts()[batch_index].detach().double().cpu().numpy()
            geom = make_mesh(unique(f"{key_name(key)}#{c}"), local, faces, key)
            matrix = M
        scene.graph.update(frame_from=ROOT_NODE, frame_to=unique(f"{key.node}#{c}"), matrix=matrix,
                           geometry=geom)
        n_nodes += 1
    return scene, n_nodes


def write_glb(path: str | os.PathLike, geometry: "Geometry",
              colors: Mapping[Any, tuple[float, float, float]] | None = None, *, batch_index: int = 0) -> GlbSummary:
    """Write ``geometry`` as an instanced .glb (atomically). ``colors``: ``{key: rgb}`` (see
    :func:`part_colors`); primitives without one are light grey."""
    scene, n_nodes = geometry_scene(geometry, colors, batch_index=batch_index)
    if n_nodes == 0:
        raise SplatError("the program has no active surface at these parameters: nothing to export",
                         file=path, field="mesh.glb")
    data = scene.export(file_type="glb")
    path = Path(path)
    write_bytes_atomic(path, data)
    return GlbSummary(path, len(scene.geometry), n_nodes)
