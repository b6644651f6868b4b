"""Scene format and data layer: nerfstudio-style transforms.json scenes, cameras, depth fusion, scans.

Public API::

    load_scene(root) -> Scene              # read + validate a scene folder
    load_cameras(root) -> tuple[Camera]    # only the cameras of a transforms.json (no images read)
    write_scene(root, cameras, images, depths=, masks=, split=, program=, gt_params=, extras=) -> Path
    fuse_depth(scene, frames=None, voxel_size=None, use_masks=True) -> Tensor [P, 3]
    read_ply_points(path) -> Tensor [P, 3];  write_ply_points(path, points)
    Camera, Scene, opengl_c2w_to_viewmat, viewmat_to_opengl_c2w, intrinsics_matrix

Conventions: docs/conventions.md.
"""

from splat.data.camera import Camera, intrinsics_matrix, opengl_c2w_to_viewmat, viewmat_to_opengl_c2w
from splat.data.fusion import fuse_depth, voxel_downsample
from splat.data.ply import read_ply_points, write_ply_points
from splat.data.scene import Scene, scene_background
from splat.data.transforms import load_cameras, load_scene
from splat.data.writer import write_scene

__all__ = [
    "Camera",
    "Scene",
    "scene_background",
    "fuse_depth",
    "intrinsics_matrix",
    "load_cameras",
    "load_scene",
    "opengl_c2w_to_viewmat",
    "read_ply_points",
    "viewmat_to_opengl_c2w",
    "voxel_downsample",
    "write_ply_points",
    "write_scene",
]
