"""Structure search quality on synthetic scans made by our programs (slow; ~4 min at the CI size).

Each case draws hidden parameters uniformly from the program's space, a hidden translation (+-0.5 m in
x, y) and yaw (+-0.3 rad), and samples an 8000-point scan. Seeds 9000+ are used here and never for
tuning (tuning used 1000+ and the benchmark's 5000+).

Criterion of issue 5: the discrete structure is recovered in at least 9 of 10 cases and the continuous
parameters within 2% of their range, for each program. Ten searches per program (~18 s each) do not fit
the CI budget, so CI runs ``SPLAT_RECOVERY_CASES`` = 3 cases per program and allows failures only at the
issue's rate, rounded down (none of 3; one of 10). ``SPLAT_RECOVERY_CASES=10 pytest -m slow
tests/test_search_recovery.py`` runs the full criterion; ``python bench/bench_search.py --recovery 10``
reports it on the benchmark seeds.

The yaw search range is +-0.8 rad, not the full circle: several programs are symmetric (a table with
equal width and depth turned by 90 degrees with the two swapped, a cabinet without back turned by 180
degrees), so with a full circle the "hidden parameters" are not identifiable and the test would measure
the symmetry, not the search.
"""

import math
import os

import pytest
import torch

from splat.program import load_program
from splat.search import PlacementSettings, SearchSettings, search, synthetic_scan

CASES = int(os.environ.get("SPLAT_RECOVERY_CASES", "3"))
ALLOWED_FAILURES = CASES // 10  # the 9-of-10 rate, rounded down
YAW_RANGE = 0.8
CONTINUOUS_TOL = 0.02  # of each parameter's range


@pytest.fixture(autouse=True)
def one_thread():
    """Run single-threaded: these tests are many small batched ops, where a second intra-op thread
    gains little and, on a busy 2-core CI box, spin-waiting threads cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _case(program, seed, **scan_kw):
    g = torch.Generator().manual_seed(seed)
    hidden = program.space.unbatch(program.space.sample(1, g))[0]
    tx, ty = (torch.rand(2, generator=g) - 0.5).tolist()
    yaw = float((torch.rand(1, generator=g) - 0.5) * 0.6)
    scan = synthetic_scan(program, hidden, 8000, g, translation=(tx, ty, 0.0), yaw=yaw, **scan_kw)
    return hidden, scan, (tx, ty, yaw)


def _structure_errors(program, hidden, params):
    act = program.space.active(hidden)
    return {p.name: (hidden[p.name], params[p.name]) for p in program.space
            if p.type != "float" and act[p.name] and params[p.name] != hidden[p.name]}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chair", "table", "cabinet", "bookshelf"])
def test_recovers_structure_and_continuous_parameters(name):
    program = load_program(name)
    wrong_structure, far_continuous = [], []
    for i in range(CASES):
        hidden, scan, (tx, ty, yaw) = _case(program, 9000 + i)
        res = search(program, scan, SearchSettings(seed=i, progress=False,
                                                   placement=PlacementSettings(yaw_range=YAW_RANGE)))
        wrong = _structure_errors(program, hidden, res.params)
        act = program.space.active(hidden)
        far = {p.name: round(abs(res.params[p.name] - hidden[p.name]) / (p.high - p.low), 4) for p in program.space
               if p.type == "float" and act[p.name]
               and abs(res.params[p.name] - hidden[p.name]) > CONTINUOUS_TOL * (p.high - p.low)}
        if wrong:
            wrong_structure.append((i, wrong))
        elif far:
            far_continuous.append((i, far))
        if not wrong:
            assert abs(res.yaw - yaw) < 0.02 and math.dist(res.translation[:2], (tx, ty)) < 0.02
        assert list(res.history) == sorted(res.history, reverse=True)
    assert len(wrong_structure) <= ALLOWED_FAILURES, f"structure not recovered: {wrong_structure}"
    assert len(wrong_structure) + len(far_continuous) <= ALLOWED_FAILURES, (
        f"continuous parameters beyond {CONTINUOUS_TOL:.0%} of range: {far_continuous}")


@pytest.mark.slow
def test_noisy_partial_chair_scan_recovers_structure():
    program = load_program("chair")
    hidden, scan, _ = _case(program, 9100, noise=0.005, drop_side=0.0)  # the whole +x half is missing
    assert scan.shape[0] < 6000
    res = search(program, scan, SearchSettings(seed=0, progress=False,
                                               placement=PlacementSettings(yaw_range=YAW_RANGE)))
    assert not _structure_errors(program, hidden, res.params)
