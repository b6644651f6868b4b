"""Benchmark: C++ CPU rasterizer vs the pure-PyTorch twin (forward, backward, fwd+bwd, memory), and the
forward's Gaussian-pixel pairs per second against the machine's measured ceiling.

    python bench/bench_rasterize.py [--sizes 5000 20000 100000] [--repeats 5] [--twin-max 100000]
                                    [--isa native avx2] [--roof PATH] [--omp-active]

Scene: a chair (seat, back, four legs, as boxes) whose faces are covered with flat Gaussians (area-
weighted, flat along the face normal, like the program-bound Gaussians of training), seen at 256x256
from a training-like camera. Each configuration runs in its own subprocess so that peak memory
(ru_maxrss over the baseline after the inputs are built) belongs to one backend and one size. Timings
are medians of several runs; other engineers share the 2 cores, so expect noise (run it twice).

Ceiling: ``roof.c`` (default ``../shared/tools/roof.c`` beside the repository) is compiled with gcc
(-O3 -march=native -ffast-math -fopenmp, plus -mno-avx512f for the avx2 build) and run on as many
OpenMP threads as torch uses, before and after the timings (the better of the two counts): dense fused
Gaussian-pixel evaluation in L1, pairs per second. Without gcc or the file the ceiling lines say so and
are skipped. Pairs of a forward = tile-Gaussian pairs (16x16 tile boxes) x 256, as in issue #16.

``--isa avx2`` builds the C++ kernel a second time with -mno-avx512f (its own cache folder) so that an
AVX-512 machine also shows what an AVX2-only one gets; the default runs both when the CPU has AVX-512.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

WIDTH = HEIGHT = 256
ROOF_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "tools" / "roof.c"
GOALS = {"ceiling": 0.40, "fwdbwd_ms": 40.0, "twin_ratio": 30.0}  # issue #16, 20k Gaussians, 2 threads

# (centre xyz, size xyz) of the chair's parts, metres, +Z up.
CHAIR = [
    ((0.0, 0.0, 0.45), (0.50, 0.50, 0.05)),  # seat
    ((0.0, 0.225, 0.75), (0.50, 0.05, 0.55)),  # back
    ((-0.22, -0.22, 0.21), (0.05, 0.05, 0.42)),  # legs
    ((0.22, -0.22, 0.21), (0.05, 0.05, 0.42)),
    ((-0.22, 0.22, 0.21), (0.05, 0.05, 0.42)),
    ((0.22, 0.22, 0.21), (0.05, 0.05, 0.42)),
]


def _rot_to_quat(rot: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N,3,3] (proper) -> wxyz quaternions [N,4] (Shepperd's method, w-branch safe)."""
    m = rot
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack([
        torch.stack([1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + 2 * m[:, 0, 0] - tr, m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 + 2 * m[:, 1, 1] - tr, m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 + 2 * m[:, 2, 2] - tr], -1),
    ], 1)  # [N, 4 candidates, 4]
    best = torch.stack([1 + tr, 1 + 2 * m[:, 0, 0] - tr, 1 + 2 * m[:, 1, 1] - tr, 1 + 2 * m[:, 2, 2] - tr], -1).argmax(-1)
    q = cands[torch.arange(len(m)), best]
    return q / q.norm(dim=-1, keepdim=True)


def chair_gaussians(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """n flat Gaussians on the faces of the chair's boxes, area-weighted."""
    faces = []  # (centre, u axis, v axis, normal, half u, half v)
    eye = torch.eye(3, dtype=torch.float64)
    for centre, size in CHAIR:
        c, s = torch.tensor(centre, dtype=torch.float64), torch.tensor(size, dtype=torch.float64)
        for axis in range(3):
            u_ax, v_ax = [a for a in range(3) if a != axis]
            for sign in (-1.0, 1.0):
                faces.append((c + sign * eye[axis] * s[axis] / 2, eye[u_ax], eye[v_ax], sign * eye[axis],
                              float(s[u_ax]) / 2, float(s[v_ax]) / 2))
    areas = torch.tensor([4 * f[4] * f[5] for f in faces])
    face = torch.multinomial(areas / areas.sum(), n, replacement=True, generator=generator)
    uv = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1
    cen = torch.stack([f[0] for f in faces])[face]
    u = torch.stack([f[1] for f in faces])[face]
    v = torch.stack([f[2] for f in faces])[face]
    nrm = torch.stack([f[3] for f in faces])[face]
    hu = torch.tensor([f[4] for f in faces], dtype=torch.float64)[face]
    hv = torch.tensor([f[5] for f in faces], dtype=torch.float64)[face]
    means = cen + uv[:, :1] * hu[:, None] * u + uv[:, 1:] * hv[:, None] * v
    ang = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi  # in-plane spin
    t1 = torch.cos(ang)[:, None] * u + torch.sin(ang)[:, None] * v
    t2 = torch.linalg.cross(nrm, t1)
    rot = torch.stack([t1, t2, nrm], -1)  # columns: local x, y, z(normal)
    spacing = math.sqrt(float(areas.sum()) / n)
    scale_t = spacing * (0.5 + 0.7 * torch.rand(n, 2, generator=generator, dtype=torch.float64))
    scales = torch.cat([scale_t, torch.full((n, 1), 1e-3, dtype=torch.float64)], -1)
    base = torch.tensor([[0.55, 0.35, 0.2]], dtype=torch.float64)
    colors = (base + 0.15 * torch.rand(n, 3, generator=generator, dtype=torch.float64)).clamp(0, 1)
    opac = 0.5 + 0.49 * torch.rand(n, generator=generator, dtype=torch.float64)
    return {"means": means.float(), "quats": _rot_to_quat(rot).float(), "scales": scales.float(),
            "opacities": opac.float(), "colors": colors.float()}


def training_camera() -> tuple[torch.Tensor, torch.Tensor]:
    eye = torch.tensor([1.3, -1.5, 1.2], dtype=torch.float64)
    target = torch.tensor([0.0, 0.0, 0.45], dtype=torch.float64)
    fwd = (target - eye) / (target - eye).norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    rot = torch.stack([right, down, fwd])
    vm = torch.eye(4, dtype=torch.float64)
    vm[:3, :3] = rot
    vm[:3, 3] = -rot @ eye
    f = 1.4 * WIDTH
    k = torch.tensor([[f, 0, WIDTH / 2], [0, f, HEIGHT / 2], [0, 0, 1]], dtype=torch.float64)
    return vm[None].float(), k[None].float()


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            return any(line.startswith("flags") and " avx512f" in line for line in fh)
    except OSError:
        return False


def use_isa(isa: str) -> None:
    """Make this process build and load the kernel for ``isa`` ("native": -march=native as shipped;
    "avx2": the same plus -mno-avx512f, under its own extension name so both builds stay cached)."""
    if isa == "native":
        return
    import splat._cpp as cpp
    from splat.render.cpu import _function

    cpp.CFLAGS = [*cpp.CFLAGS, "-mno-avx512f"]
    _function._KERNEL = (f"{_function._KERNEL[0]}_{isa}", *_function._KERNEL[1:])


def measure_roof(source: Path, isa: str, threads: int, env: dict) -> tuple[float | None, str]:
    """Pairs per second of roof.c built for ``isa`` on ``threads`` OpenMP threads, or (None, why not)."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None, "gcc not found"
    if not source.is_file():
        return None, f"{source} not found"
    flags = ["-O3", "-march=native", "-ffast-math", "-fopenmp"] + (["-mno-avx512f"] if isa == "avx2" else [])
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "roof")
        cc = subprocess.run([gcc, *flags, str(source), "-o", exe, "-lm"], capture_output=True, text=True)
        if cc.returncode != 0:
            return None, "gcc failed: " + (cc.stderr.strip().splitlines() or ["?"])[-1]
        try:
            out = subprocess.run([exe], capture_output=True, text=True, env=dict(env, OMP_NUM_THREADS=str(threads)),
                                 timeout=600)
        except subprocess.TimeoutExpired:
            return None, "roof timed out"
    m = re.search(r"->\s*([0-9.eE+-]+)\s*pairs/s", out.stdout)
    if out.returncode != 0 or m is None:
        return None, f"unexpected roof output: {out.stdout.strip()[:80]!r}"
    return float(m.group(1)), " ".join(flags)


def run_one(backend: str, n: int, repeats: int, isa: str = "native") -> dict:
    """Time forward / backward of one backend on the chair scene; called in a fresh subprocess."""
    use_isa(isa)
    from splat.render import RasterSettings, rasterize
    from splat.maths import quat_scale_components
    from splat.render._projection import project
    from splat.render._reference import bin_gaussians

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(n)
    p = chair_gaussians(n, g)
    vm, k = training_camera()
    settings = RasterSettings(backend=backend)
    leaves = {key: val.clone().requires_grad_(True) for key, val in p.items()}
    w_img = torch.rand(1, HEIGHT, WIDTH, 3, generator=g)

    def forward():
        return rasterize(leaves["means"], leaves["opacities"], leaves["colors"], vm, k, WIDTH, HEIGHT,
                         quats=leaves["quats"], scales=leaves["scales"], settings=settings)

    if backend == "cpu":
        from splat.render.cpu import load_kernel

        load_kernel()
    baseline = _rss_mb()  # inputs built, extension loaded
    res = forward()  # warm-up
    assert res.backend == backend, res.backend
    (res.colors * w_img).sum().backward()
    fwd, bwd, cpu_fb = [], [], []
    for _ in range(repeats):
        for leaf in leaves.values():
            leaf.grad = None
        c0 = time.process_time()
        t0 = time.perf_counter()
        res = forward()
        loss = (res.colors * w_img).sum() + res.alphas.sum()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        cpu_fb.append(time.process_time() - c0)
        fwd.append(t1 - t0)
        bwd.append(t2 - t1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kernel_fwd = float("nan")
    if backend == "cpu":  # the C++ forward alone (binning + compositing) on the projected Gaussians
        from splat.render.cpu import load_kernel

        with torch.no_grad():
            cov = quat_scale_components(leaves["quats"], leaves["scales"])
            pr = project(leaves["means"], cov, leaves["opacities"], vm, k, WIDTH, HEIGHT, near_plane=0.01,
                         far_plane=1e10, eps2d=0.3, antialiased=False)
            args = (pr.means2d[0].contiguous(), pr.conics[0].contiguous(), leaves["colors"].detach().contiguous(),
                    pr.opacities[0].contiguous(), pr.radii[0].to(torch.int32).contiguous(),
                    pr.depths[0].contiguous(), None, WIDTH, HEIGHT)
        ext = load_kernel()
        kern = []
        for _ in range(max(repeats, 5)):
            t0 = time.perf_counter()
            ext.forward(*args)
            kern.append(time.perf_counter() - t0)
        kernel_fwd = min(kern)
    # Single-threaded process CPU time of fwd+bwd: the work itself, robust to other load (with 2
    # threads, CPU time also counts OpenMP spin-waits when the other thread is descheduled).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    one = []
    for _ in range(repeats):
        for leaf in leaves.values():
            leaf.grad = None
        c0 = time.process_time()
        res = forward()
        ((res.colors * w_img).sum() + res.alphas.sum()).backward()
        one.append(time.process_time() - c0)
    # Projection alone (shared PyTorch code): is it the bottleneck?
    proj_t = []  # (single-threaded as well)
    for _ in range(repeats):
        t0 = time.process_time()
        cov = quat_scale_components(leaves["quats"], leaves["scales"])
        pr = project(leaves["means"], cov, leaves["opacities"], vm, k, WIDTH, HEIGHT, near_plane=0.01,
                     far_plane=1e10, eps2d=0.3, antialiased=False)
        (pr.means2d.sum() + pr.conics.sum() + pr.opacities.sum()).backward()
        proj_t.append(time.process_time() - t0)
    with torch.no_grad():
        offsets, _ = bin_gaussians(pr.means2d[0], pr.radii[0], pr.depths[0], WIDTH, HEIGHT)
    n_isects = int(offsets[-1])
    io_bytes = sum(v.numel() * 4 for v in p.values()) * 2 + (res.colors.numel() + res.alphas.numel()) * 4 * 2
    io_bytes += (res.means2d.numel() + res.radii.numel() + res.depths.numel()) * 4
    return {
        "backend": backend, "n": n, "fwd": min(fwd), "bwd": min(bwd),
        "fwdbwd": min(a + b for a, b in zip(fwd, bwd)), "fwdbwd_med": statistics.median([a + b for a, b in zip(fwd, bwd)]),
        "cpu": statistics.median(cpu_fb), "one": statistics.median(one), "proj": statistics.median(proj_t),
        "peak_mb": max(peak - baseline, 0.0), "baseline_mb": baseline, "io_mb": io_bytes / 2**20, "n_isects": n_isects,
        "threads": threads, "kernel_fwd": kernel_fwd, "isa": isa,
    }


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--twin-max", type=int, default=100000, help="skip the (slow) twin above this size")
    ap.add_argument("--isa", nargs="+", choices=["native", "avx2"], default=None,
                    help="kernel builds to time (default: native, and avx2 too when the CPU has AVX-512)")
    ap.add_argument("--roof", type=Path, default=ROOF_SOURCE, help="ceiling program (roof.c) to build and run")
    ap.add_argument("--omp-active", action="store_true",
                    help="time with OMP_WAIT_POLICY=ACTIVE (libgomp's spin-waiting default; splat sets PASSIVE)")
    ap.add_argument("--_child", nargs=4, metavar=("BACKEND", "N", "REPEATS", "ISA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        backend, n, reps, isa = args._child
        print(json.dumps(run_one(backend, int(n), int(reps), isa)))
        return
    from splat.render.cpu import kernel_available

    if not kernel_available():
        sys.exit("the C++ extension could not be built; nothing to compare")
    isas = args.isa or (["native", "avx2"] if cpu_has_avx512() else ["native"])
    threads = torch.get_num_threads()
    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE" if args.omp_active else os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    print(f"rasterize at {WIDTH}x{HEIGHT}, chair of flat Gaussians, 1 camera, torch threads {threads}"
          f", OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}; best/medians of {args.repeats}; "
          f"AVX-512 on this CPU: {'yes' if cpu_has_avx512() else 'no'}; shared machine: timings are noisy")
    print(f"load average at start (1/5/15 min): {_load()}")
    roofs: dict[str, list[float]] = {isa: [] for isa in isas}
    roof_note: dict[str, str] = {}

    def roof_round() -> None:
        for isa in isas:
            rate, note = measure_roof(args.roof, isa, threads, env)
            roof_note[isa] = note
            if rate is not None:
                roofs[isa].append(rate)

    roof_round()
    configs = [("cpu", isa) for isa in isas] + [("torch", "native")]
    rows = {}
    for n in args.sizes:
        for backend, isa in configs:
            if backend == "torch" and n > args.twin_max:
                continue
            reps = args.repeats if backend == "cpu" else max(1, min(args.repeats, 2))
            out = subprocess.run([sys.executable, __file__, "--_child", backend, str(n), str(reps), isa],
                                 capture_output=True, text=True, check=True, env=env)
            rows[(n, backend, isa)] = json.loads(out.stdout.strip().splitlines()[-1])
    roof_round()
    head = (f"{'N':>7} {'backend':>8} {'fwd ms':>8} {'bwd ms':>8} {'f+b ms':>8} {'f+b med':>8} {'cpu ms':>8} "
            f"{'1-thr ms':>8} {'proj 1t':>8} {'kfwd ms':>8} {'fwd Gp/s':>8} {'kfwd Gp/s':>9} {'peak MB':>8} "
            f"{'io MB':>6} {'peak/io':>7}")
    print(head)
    for n in args.sizes:
        for backend, isa in configs:
            r = rows.get((n, backend, isa))
            if r is None:
                continue
            pairs = r["n_isects"] * 256  # Gaussian-pixel pairs of one forward (16x16 tile boxes)
            label = backend if isa == "native" else f"{backend}-{isa}"
            print(f"{n:>7} {label:>8} {r['fwd'] * 1e3:8.1f} {r['bwd'] * 1e3:8.1f} {r['fwdbwd'] * 1e3:8.1f} "
                  f"{r['fwdbwd_med'] * 1e3:8.1f} {r['cpu'] * 1e3:8.1f} {r['one'] * 1e3:8.1f} {r['proj'] * 1e3:8.1f} "
                  f"{r['kernel_fwd'] * 1e3:8.2f} {pairs / r['fwd'] / 1e9:8.3f} {pairs / r['kernel_fwd'] / 1e9:9.3f} "
                  f"{r['peak_mb']:8.1f} {r['io_mb']:6.1f} {r['peak_mb'] / r['io_mb']:7.1f}")
        t = rows.get((n, "torch", "native"))
        for isa in isas:
            c = rows.get((n, "cpu", isa))
            if c and t:
                print(f"{n:>7} {'ratio':>8} {t['fwd'] / c['fwd']:7.1f}x {t['bwd'] / c['bwd']:7.1f}x "
                      f"{t['fwdbwd'] / c['fwdbwd']:7.1f}x {t['fwdbwd_med'] / c['fwdbwd_med']:7.1f}x "
                      f"{t['cpu'] / c['cpu']:7.1f}x {t['one'] / c['one']:7.1f}x   (twin / cpu{'' if isa == 'native' else '-' + isa}, "
                      f"same run; tile-Gaussian pairs {c['n_isects']})")
    print(f"load average at end (1/5/15 min): {_load()}")
    for isa in isas:
        if not roofs[isa]:
            print(f"ceiling ({isa}): skipped: {roof_note[isa]}")
            continue
        roof = max(roofs[isa])
        print(f"ceiling ({isa}): {roof / 1e9:.3f} G pairs/s ({args.roof.name}: {roof_note[isa]}, {threads} threads; "
              f"runs {', '.join(f'{x / 1e9:.3f}' for x in roofs[isa])})")
        for n in args.sizes:
            c = rows.get((n, "cpu", isa))
            if c is None:
                continue
            pairs = c["n_isects"] * 256
            print(f"  N {n:>6}: forward {pairs / c['fwd'] / 1e9:.3f} G pairs/s = {pairs / c['fwd'] / roof:.2f} of the "
                  f"ceiling (whole rasterize forward: projection + kernel); kernel forward alone "
                  f"{pairs / c['kernel_fwd'] / 1e9:.3f} G pairs/s = {pairs / c['kernel_fwd'] / roof:.2f}")
    c, t = rows.get((20000, "cpu", isas[0])), rows.get((20000, "torch", "native"))
    if c and roofs[isas[0]]:
        ratio = c["n_isects"] * 256 / c["fwd"] / max(roofs[isas[0]])
        twin = f"{t['fwdbwd'] / c['fwdbwd']:.1f}x" if t else "n/a"
        print(f"issue #16 goals at 20k ({isas[0]}): forward {ratio:.2f} of ceiling (goal >= {GOALS['ceiling']:.2f}); "
              f"f+b {c['fwdbwd'] * 1e3:.1f} ms best, {c['fwdbwd_med'] * 1e3:.1f} ms median (goal <= "
              f"{GOALS['fwdbwd_ms']:.0f} ms); twin/cpu f+b {twin} (goal >= {GOALS['twin_ratio']:.0f}x)")
    print("fwd/bwd/f+b: best of the repeats (wall); f+b med: median wall; cpu: median process CPU time of "
          "f+b summed over threads (includes torch's OpenMP spin-waits under load).\n1-thr: median CPU time of f+b with "
          "torch.set_num_threads(1), the least load-sensitive figure (~wall on one idle core).\n"
          "proj 1t: single-threaded CPU time of the PyTorch projection alone (fwd+bwd; the torch twin's, part of its 1-thr; the cpu backend projects with the fused C++ pass). "
          "kfwd: best wall time of the C++ forward alone (binning + compositing, torch threads).\n"
          "fwd Gp/s, kfwd Gp/s: Gaussian-pixel pairs (tile-Gaussian pairs x 256) per second of the whole forward / "
          "the kernel forward. peak: ru_maxrss above the baseline (inputs built, extension loaded); io: inputs + "
          "outputs + their gradients.")


if __name__ == "__main__":
    main()
