"""Differentiable geometry ops: nearest neighbours, Chamfer distance, surface sampling (and SSIM).

Each fast op has a plain-torch twin in the library (``backend="brute"`` for KNN and Chamfer).
"""

from splat.ops.chamfer import ChamferResult, ChamferSettings, chamfer_distance
from splat.ops.knn import KnnResult, knn_gather, knn_indices, knn_points, packed_to_padded, padded_to_packed
from splat.ops.sampling import SurfaceSamples, face_areas, sample_surface, sample_surface_stratified

__all__ = [
    "ChamferResult",
    "ChamferSettings",
    "chamfer_distance",
    "KnnResult",
    "knn_gather",
    "knn_indices",
    "knn_points",
    "packed_to_padded",
    "padded_to_packed",
    "SurfaceSamples",
    "face_areas",
    "sample_surface",
    "sample_surface_stratified",
]
