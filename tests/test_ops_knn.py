"""KNN: KD-tree backend vs the brute-force torch twin vs a dense autograd reference (budget < 5 s)."""

import pytest
import torch

from splat.ops.knn import knn_indices, knn_points, packed_to_padded, padded_to_packed


def _cloud(gen, b, n, dtype=torch.float64):
    return torch.rand((b, n, 3), generator=gen, dtype=dtype)


def _dense_reference(x, y, xl, yl, k):
    """Per-batch dense pairwise distances + topk (autograd through topk values)."""
    out = []
    for b in range(max(x.shape[0], y.shape[0])):
        xb = x[min(b, x.shape[0] - 1), : xl[min(b, x.shape[0] - 1)]]
        yb = y[min(b, y.shape[0] - 1), : yl[min(b, y.shape[0] - 1)]]
        d = (xb[:, None, :] - yb[None, :, :]).square().sum(-1)
        kk = min(k, yb.shape[0])
        out.append(torch.topk(d, kk, dim=1, largest=False).values if kk else d.new_zeros((xb.shape[0], 0)))
    return out


@pytest.mark.parametrize("bx,by", [(3, 3), (3, 1), (1, 3)])
@pytest.mark.parametrize("k", [1, 4])
def test_kdtree_matches_twin_and_dense_on_ragged_batches(bx, by, k):
    gen = torch.Generator().manual_seed(bx * 10 + by + k)
    x = _cloud(gen, bx, 50).requires_grad_()
    y = _cloud(gen, by, 40).requires_grad_()
    xl = torch.tensor([50, 17, 0][:bx]) if bx > 1 else torch.tensor([33])
    yl = torch.tensor([40, 2, 25][:by]) if by > 1 else torch.tensor([40])
    fast = knn_points(x, y, xl, yl, K=k, backend="kdtree")
    twin = knn_points(x, y, xl, yl, K=k, backend="brute", chunk=7)
    torch.testing.assert_close(fast.idx, twin.idx)
    torch.testing.assert_close(fast.dists, twin.dists)
    ref = _dense_reference(x, y, xl, yl, k)
    b_total = max(bx, by)
    for b in range(b_total):
        n_b = int(xl[min(b, bx - 1)])
        got = fast.dists[b, :n_b, : ref[b].shape[1]]
        torch.testing.assert_close(got, ref[b])
        assert bool((fast.idx[b, :n_b, ref[b].shape[1] :] == -1).all())  # fewer than K reference points
        assert bool((fast.idx[b, n_b:] == -1).all()) and bool((fast.dists[b, n_b:] == 0).all())
    # Gradients to both clouds equal the twin's and the dense reference's.
    w = torch.rand(fast.dists.shape, generator=gen, dtype=torch.float64)
    gx, gy = torch.autograd.grad((fast.dists * w).sum(), (x, y))
    tx, ty = torch.autograd.grad((twin.dists * w).sum(), (x, y))
    rloss = sum((ref[b] * w[b, : ref[b].shape[0], : ref[b].shape[1]]).sum() for b in range(b_total))
    rx, ry = torch.autograd.grad(rloss, (x, y), allow_unused=True)
    torch.testing.assert_close(gx, tx)
    torch.testing.assert_close(gy, ty)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gy, ry)


def test_gradcheck_tiny():
    gen = torch.Generator().manual_seed(3)
    x = _cloud(gen, 2, 5).requires_grad_()
    y = _cloud(gen, 2, 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: knn_points(a, b, K=2).dists, (x, y))


def test_float32_and_empty_reference():
    gen = torch.Generator().manual_seed(4)
    x = _cloud(gen, 2, 30, torch.float32)
    y = _cloud(gen, 2, 30, torch.float32)
    res = knn_points(x, y, y_lengths=torch.tensor([0, 30]))
    assert res.dists.dtype == torch.float32 and res.idx.dtype == torch.int64
    assert bool((res.idx[0] == -1).all()) and bool((res.idx[1] >= 0).all())
    torch.testing.assert_close(res.idx, knn_indices(x, y, y_lengths=torch.tensor([0, 30]), backend="brute"))


def test_packed_round_trip():
    gen = torch.Generator().manual_seed(5)
    lengths = torch.tensor([3, 0, 5])
    packed = torch.rand((8, 3), generator=gen)
    padded = packed_to_padded(packed, lengths)
    assert padded.shape == (3, 5, 3)
    torch.testing.assert_close(padded_to_packed(padded, lengths), packed)


def test_bad_shapes():
    with pytest.raises(ValueError, match="broadcast"):
        knn_points(torch.zeros(2, 3, 3), torch.zeros(3, 3, 3))
    with pytest.raises(ValueError, match="x_lengths"):
        knn_points(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), x_lengths=torch.tensor([4, 1]))
    with pytest.raises(ValueError, match="K"):
        knn_points(torch.zeros(1, 3, 3), torch.zeros(1, 3, 3), K=0)


@pytest.mark.cuda
def test_cuda_backend_matches_twin():
    gen = torch.Generator().manual_seed(6)
    x = _cloud(gen, 2, 200, torch.float32).cuda()
    y = _cloud(gen, 2, 150, torch.float32).cuda()
    yl = torch.tensor([150, 3], device="cuda")
    fast = knn_points(x, y, y_lengths=yl, K=4)
    twin = knn_points(x.cpu(), y.cpu(), y_lengths=yl.cpu(), K=4, backend="kdtree")
    torch.testing.assert_close(fast.idx.cpu(), twin.idx)
    torch.testing.assert_close(fast.dists.cpu(), twin.dists)
