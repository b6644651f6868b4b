"""A quick shaded preview image of a program's geometry (no Blender, no Gaussians).

``preview_image(geometry)`` samples the realized surface densely (area-weighted, with normals), looks at
it from the front-left and above (the front of a program faces -Y), keeps the nearest sample per pixel
and shades it with a fixed headlight-and-key Lambert light. It is a thumbnail for ``splat programs
sample``, not a renderer: thin parts seen edge-on may show gaps of a pixel.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from splat.errors import SplatError


def preview_image(geometry, *, size: int = 256, samples: int = 200_000, batch_index: int = 0,
                  seed: int = 0, background: float = 1.0) -> np.ndarray:
    """``[size, size, 3]`` uint8 image of element ``batch_index`` of ``geometry`` (a Geometry).

    Convention: +Z up, the camera 35 deg above the horizon, 30 deg left of the -Y axis, the bounding box
    filling ~85% of the frame.
    """
    from splat.ops.sampling import sample_surface

    mesh = geometry.realize()
    verts = mesh.verts[batch_index : batch_index + 1].detach().double()
    active = mesh.face_active[batch_index : batch_index + 1]
    if not bool(active.any()):
        raise SplatError("the program has no active surface at these parameters: nothing to draw", field="preview")
    gen = torch.Generator().manual_seed(seed)
    surf = sample_surface(verts, mesh.faces, samples, gen, face_active=active)
    n = int(surf.lengths[0])
    pts = surf.points[0, :n].numpy()
    nrm = surf.normals[0, :n].numpy()
    lo, hi = pts.min(0), pts.max(0)
    center = 0.5 * (lo + hi)
    radius = max(float(np.linalg.norm(hi - lo)) / 2.0, 1e-3)
    az, el = math.radians(-120.0), math.radians(35.0)  # camera direction from the centre: front-left, above
    view_dir = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    fov = math.radians(40.0)
    dist = radius / math.sin(fov / 2.0) / 0.85
    eye = center + dist * view_dir
    fwd = (center - eye) / np.linalg.norm(center - eye)
    right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    rel = pts - eye
    z = rel @ fwd
    f = size / 2.0 / math.tan(fov / 2.0)
    u = np.floor(f * (rel @ right) / z + size / 2.0).astype(np.int64)
    v = np.floor(-f * (rel @ up) / z + size / 2.0).astype(np.int64)
    ok = (z > 1e-6) & (u >= 0) & (u < size) & (v >= 0) & (v < size)
    u, v, z, nrm = u[ok], v[ok], z[ok], nrm[ok]
    # two-sided Lambert: a key light from the upper left and a weaker headlight
    toward_cam = -fwd
    nrm = np.where(((nrm @ toward_cam) < 0)[:, None], -nrm, nrm)
    key = np.array([-0.4, -0.5, 0.77])
    key /= np.linalg.norm(key)
    shade = 0.25 + 0.5 * np.clip(nrm @ key, 0, 1) + 0.3 * np.clip(nrm @ toward_cam, 0, 1)
    pix = v * size + u
    order = np.lexsort((z, pix))  # by pixel, nearest first
    pix, shade = pix[order], shade[order]
    first = np.unique(pix, return_index=True)[1]
    img = np.full(size * size, background, dtype=np.float64)
    img[pix[first]] = np.clip(shade[first], 0, 1)
    rgb = np.stack([img * 0.93, img * 0.86, img * 0.78], axis=-1)  # a light wood tint
    rgb[img == background] = background
    return (rgb.reshape(size, size, 3) * 255.0 + 0.5).astype(np.uint8)
