"""``splat batch``: many scenes, one job each, on the local process pool and on Ray.

Three tiny scenes (two 32x32 synthetic stools made here, one folder with a broken transforms.json) train
two smoke steps each at one thread (bitwise reproducible), so the local engine and Ray must give the same
table. Budget on 2 busy cores: fast tests ~25 s together; the Ray test (~20 s: Ray's start, three tasks)
and the kill-and-resume test (~25 s: a real SIGKILL of the batch's process group) are marked slow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from splat.batch import job_names, make_jobs, read_scene_list
from splat.batch.results import JobRow, Progress, format_markdown
from splat.cli import run_cli
from splat.commands import main as splat_main
from splat.commands.batch import check_train_args, scene_configs, split_argv
from splat.errors import SplatError
from train_fixtures import make_stool_scene

REPO = Path(__file__).resolve().parents[1]


def smoke_args(steps: int = 2, checkpoint_every: int = 1) -> list[str]:
    """splat.presets.smoke as train options (test_smoke_args_are_presets_smoke checks it)."""
    return ["--structure.no-silhouette-check", "--scan.points", "512", "--search.population", "4",
            "--search.generations", "1", "--search.final-refine.steps", "2", "--gaussians.num-init", "300",
            "--gaussians.detail-init", "0",
            "--optim.steps", str(steps), "--optim.program-start", "0", "--loss.chamfer-samples", "256",
            "--densify.start", "1", "--densify.stop", "2", "--densify.every", "1",
            "--densify.max-gaussians", "2000", "--log.every", "1", "--log.image-every", "2",
            "--log.checkpoint-every", str(checkpoint_every), "--log.no-progress",
            "--eval.surface-samples", "512", "--eval.no-save-renders"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> list[str]:
    """Two good scenes (different stools) and a bad one (transforms.json not JSON), as paths."""
    root = tmp_path_factory.mktemp("batch_scenes")
    make_stool_scene(root / "stool_a", n_train=5, n_test=2, size=32, num_gaussians=1500)
    make_stool_scene(root / "stool_b", params={"Width": 0.4, "Height": 0.5, "Has Back": False},
                     n_train=5, n_test=2, size=32, num_gaussians=1500)
    shutil.copytree(root / "stool_a", root / "broken")
    (root / "broken" / "transforms.json").write_text("{ not json", encoding="utf-8")
    return [str(root / "stool_a"), str(root / "stool_b"), str(root / "broken")]


def _batch(argv: list[str]) -> int:
    """``splat batch ARGV`` in this process; its exit status."""
    try:
        run_cli(lambda: splat_main(["batch", *argv]))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def local_batch(scenes, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch_local")
    status = _batch([*scenes, "--out", str(out), "--workers", "2", "--threads", "1", "--", *smoke_args()])
    return out, status, _rows(out)


# --- options, names, lists (no training) ------------------------------------------------------------

def test_argv_split_and_options_the_batch_owns():
    assert split_argv(["a", "b", "--out", "d", "--optim.steps", "5"]) == (["a", "b", "--out", "d"],
                                                                          ["--optim.steps", "5"])
    assert split_argv(["a", "--workers=2", "--", "--seed", "3"]) == (["a", "--workers=2"], ["--seed", "3"])
    assert split_argv(["a", "--out", "d"]) == (["a", "--out", "d"], [])
    for owned in (["--run", "x"], ["--output-dir=x"], ["--resume"], ["--threads", "2"], ["--program", "chair"]):
        with pytest.raises(SplatError, match="set by splat batch"):
            check_train_args(owned)
    check_train_args(["--seed", "3", "--optim.steps", "5"])


@pytest.mark.parametrize("argv, field", [
    (["chair", "--out", "{out}", "--program", "auto"], "--program auto"),
    (["chair", "--out", "{out}", "--", "--run", "x"], "--run"),
    (["--out", "{out}"], "scenes"),
    (["chair", "--out", "{out}", "--threads", "0"], "--threads"),
    (["chair", "--out", "{out}", "--address", "auto"], "--address"),
    (["--list", "{out}/none.txt", "--out", "{out}"], "--list"),
])
def test_usage_errors_are_one_line_and_status_2(argv, field, tmp_path, capsys):
    status = _batch([a.replace("{out}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("error:") and field in err[0], err
    assert not (tmp_path / "results.jsonl").exists()  # nothing ran


def test_auto_program_says_not_built_yet(tmp_path, capsys):
    assert _batch(["chair", "--out", str(tmp_path), "--program", "auto"]) == 2
    assert "not built yet" in capsys.readouterr().err


def test_job_names_are_unique_and_stable(tmp_path):
    a, b = tmp_path / "x" / "scene", tmp_path / "y" / "scene"
    names = job_names([str(a), "chair", str(b)])
    assert names[1] == "chair" and names[0].startswith("scene-") and names[2].startswith("scene-")
    assert len(set(names)) == 3 and job_names([str(b), str(a)]) == [names[2], names[0]]  # order-free
    with pytest.raises(SplatError, match="listed twice"):
        job_names(["chair", "chair"])
    from splat.config import TrainConfig

    jobs = make_jobs([str(a), str(b), "nope"], [TrainConfig(scene=str(a)), TrainConfig(scene=str(b)),
                                                 "nope: no such scene"], tmp_path / "out", threads=2)
    assert jobs[0].run_dir != jobs[1].run_dir
    assert jobs[0].run_dir.parent == tmp_path / "out" / "runs" / "scene"
    assert jobs[0].config.threads == 2 and jobs[0].config.output_dir.is_absolute()
    assert jobs[2].config is None and jobs[2].error == "nope: no such scene"


def test_scene_list_file(tmp_path):
    (tmp_path / "data" / "s1").mkdir(parents=True)
    lst = tmp_path / "data" / "scenes.txt"
    lst.write_text("# my scenes\ns1\n\nchair   # shipped\n/abs/elsewhere\n")
    assert read_scene_list(lst) == [str(tmp_path / "data" / "s1"), "chair", "/abs/elsewhere"]
    with pytest.raises(SplatError, match="--list"):
        read_scene_list(tmp_path / "missing.txt")


def test_smoke_args_are_presets_smoke(scenes):
    from splat import presets
    from splat.config import TrainConfig

    cfg_path, cfg_chair = scene_configs([scenes[0], "chair"], smoke_args())
    assert cfg_path == presets.smoke(TrainConfig(scene=scenes[0]))
    assert cfg_chair == presets.smoke(presets.preset("chair"))
    # without train options the preset itself, progress bars off (the batch prints its own progress)
    (plain,) = scene_configs(["chair"], [])
    assert plain.optim == presets.preset("chair").optim and plain.log.progress is False
    bad, missing = scene_configs(["stool", "no_such_scene"], [])
    assert bad.scene == "stool" and isinstance(missing, str) and "no such scene" in missing


def test_progress_lines_count_failures_and_eta():
    now = [0.0]
    lines: list[str] = []
    p = Progress(4, lines.append, clock=lambda: now[0])
    p.update(JobRow("old", "s0", "ok", skipped=True), ran=False)
    now[0] = 10.0
    p.update(JobRow("a", "s1", "ok", seconds=9.5, metrics={"test": {"psnr": 30.0}}))
    now[0] = 20.0
    p.update(JobRow("b", "s2", "error", error="boom"))
    assert lines[0].startswith("[1/4] old: done earlier, skipped | 0 failed") and lines[0].endswith("ETA ?")
    assert "[2/4] a: ok 9.5 s, PSNR 30.00 dB | 0 failed | elapsed 0:00:10 | ETA 0:00:20" in lines[1]
    assert lines[2] == "[3/4] b: error: boom | 1 failed | elapsed 0:00:20 | ETA 0:00:10"
    md = format_markdown([JobRow("b", "s2", "error", error="a | b")], total=2)
    assert "1 failed, 1 not finished" in md and "a \\| b" in md


def test_rows_round_trip_through_json():
    row = JobRow("a", "/s/a", "ok", program="chair", run="/o/runs/a/run", resumed_from=20, seconds=1.5,
                 metrics={"format": "splat.eval/1", "test": {"psnr": 30.0}})
    data = json.loads(json.dumps(row.as_dict()))
    assert data["format"] == "splat.batch/1" and JobRow.from_dict(data) == row
    assert row.metric("test", "psnr") == 30.0 and row.metric("test", "nope", "x") is None


# --- the local engine ------------------------------------------------------------------------------

def test_local_engine_two_results_and_one_error_row(local_batch, scenes):
    out, status, rows = local_batch
    assert status == 1  # the exit status is the number of failed scenes
    assert [r["job"] for r in rows] == ["stool_a", "stool_b", "broken"]
    ok, bad = rows[:2], rows[2]
    for row, scene in zip(ok, scenes):
        assert row["status"] == "ok" and row["error"] is None and not row["skipped"]
        assert row["metrics"]["format"] == "splat.eval/1" and row["metrics"]["scene"] == scene
        assert row["metrics"]["test"]["num_views"] == 2 and row["program"] == "stool"
        run = Path(row["run"])
        assert run == out / "runs" / Path(scene).name / "run"
        saved = json.loads((run / "config.json").read_text())  # the resolved config of the run
        assert saved["threads"] == 1 and saved["optim"]["steps"] == 2
    assert ok[0]["metrics"]["params"] != ok[1]["metrics"]["params"]
    assert bad["status"] == "error" and bad["metrics"] is None
    assert "\n" not in bad["error"] and "transforms.json" in bad["error"] and "malformed JSON" in bad["error"]
    batch = json.loads((out / "batch.json").read_text())
    assert [j["job"] for j in batch["jobs"]] == ["stool_a", "stool_b", "broken"]
    assert batch["jobs"][0]["config"]["seed"] == 0 and batch["jobs"][0]["config"]["scene"] == scenes[0]
    md = (out / "results.md").read_text()
    assert "3 scenes: 2 ok (0 done earlier), 1 failed" in md and "| stool_a | ok | stool |" in md


def test_rerun_skips_finished_scenes(local_batch, scenes):
    out, _, first = local_batch
    metrics = [Path(r["run"]) / "metrics.json" for r in first[:2]]
    stamps = [p.stat().st_mtime_ns for p in metrics]
    status = _batch([*scenes, "--out", str(out), "--workers", "2", "--", *smoke_args()])
    again = _rows(out)
    assert status == 1
    assert [r["skipped"] for r in again] == [True, True, False]  # the failed one is tried again
    assert [p.stat().st_mtime_ns for p in metrics] == stamps  # not retrained
    for a, b in zip(first[:2], again[:2]):
        assert a["metrics"] == b["metrics"] and b["seconds"] == a["seconds"]
    assert again[2]["status"] == "error" and again[2]["error"] == first[2]["error"]
    assert "done earlier, skipped" in (out / "results.md").read_text()


def test_local_engine_never_imports_ray(tmp_path):
    code = ("import sys\nfrom splat.commands import main\n"
            f"try:\n    main(['batch', 'no_such_scene', '--out', {str(tmp_path)!r}])\n"
            "except SystemExit as e:\n    assert e.code == 1, e.code\n"
            "assert 'ray' not in sys.modules\nprint('no ray')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no ray" in done.stdout, done.stderr
    (row,) = _rows(tmp_path)
    assert row["status"] == "error" and "no such scene" in row["error"]


# --- Ray ---------------------------------------------------------------------------------------------

def _comparable(row: dict) -> dict:
    """A row without what depends on the output folder or the clock."""
    row = {k: v for k, v in row.items() if k not in ("run", "seconds")}
    if row["metrics"] is not None:
        row["metrics"] = {k: v for k, v in row["metrics"].items() if k not in ("run", "seconds")}
    return row


def _differences(a, b, path: str = "", rel: float = 1e-9) -> list[str]:
    """The leaves where two nested rows differ, as `path: a != b`; floats to `rel` (relative).

    Not bitwise: the evaluation's colour-corrected PSNR solves a least-squares fit with MKL's LAPACK,
    whose last bits depend on the arrays' memory alignment, so they differ between any two processes."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{path}.{k}", rel)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, float) and isinstance(b, float) and math.isclose(a, b, rel_tol=rel, abs_tol=1e-12):
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_table(local_batch, scenes, tmp_path):
    ray = pytest.importorskip("ray")
    _, _, local_rows = local_batch
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        status = _batch([*scenes, "--out", str(tmp_path), "--engine", "ray", "--threads", "1", "--",
                         *smoke_args()])
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()
    rows = _rows(tmp_path)
    assert status == 1
    assert [r["status"] for r in rows] == ["ok", "ok", "error"]
    # same seeds, one thread: the same training, bit for bit (the fitted parameters, the Gaussians' count)...
    for ray_row, local_row in zip(rows[:2], local_rows[:2]):
        assert ray_row["metrics"]["params"] == local_row["metrics"]["params"]
        assert ray_row["metrics"]["num_gaussians"] == local_row["metrics"]["num_gaussians"]
    # ... and the same table, every number to 1e-9 (see _differences)
    assert _differences([_comparable(r) for r in rows], [_comparable(r) for r in local_rows]) == []


# --- a batch killed midway -------------------------------------------------------------------------

@pytest.mark.slow
def test_killed_batch_resumes_from_the_checkpoint(scenes, tmp_path):
    from splat.runs import load_checkpoint

    scene = tmp_path / "stool_k"
    shutil.copytree(scenes[0], scene)
    out = tmp_path / "out"
    argv = [str(scene), "--out", str(out), "--workers", "1", "--", *smoke_args(steps=600, checkpoint_every=10)]
    ckpts = out / "runs" / "stool_k" / "run" / "checkpoints"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "splat", "batch", *argv], stdout=log, stderr=log,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    killed_at = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            ck = load_checkpoint(ckpts) if (ckpts / "latest.pt").is_file() else None
            if ck is not None and ck["stage"] == "joint" and ck["step"] >= 10:
                os.killpg(proc.pid, signal.SIGKILL)  # the batch and its worker, mid-training
                killed_at = ck["step"]
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None and killed_at is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
    assert killed_at is not None, (tmp_path / "first.log").read_text()[-2000:]
    run = out / "runs" / "stool_k" / "run"
    assert not (run / "metrics.json").exists(), "the job finished before the kill: raise its steps"

    assert _batch(argv) == 0
    (row,) = _rows(out)
    assert row["status"] == "ok" and not row["skipped"]
    assert row["resumed_from"] is not None and row["resumed_from"] >= killed_at  # not from scratch
    assert load_checkpoint(run / "checkpoints")["step"] == 600 and (run / "metrics.json").is_file()
    assert f"resumed from step {row['resumed_from']}" in (out / "results.md").read_text()


@pytest.mark.slow
def test_a_worker_that_dies_is_an_error_row_and_the_others_go_on(scenes, tmp_path):
    """SIGKILL one job's worker process mid-training (as the OOM killer would): that job is an error row
    saying so, the other job finishes; a rerun resumes the killed one from its checkpoint."""
    import multiprocessing
    import threading

    from splat.batch import EngineSettings, run_batch
    from splat.runs import load_checkpoint

    long_scene = tmp_path / "stool_long"
    shutil.copytree(scenes[0], long_scene)
    names = [str(long_scene), scenes[1]]
    (long_cfg,) = scene_configs([str(long_scene)], smoke_args(steps=600, checkpoint_every=10))
    (short_cfg,) = scene_configs([scenes[1]], smoke_args())
    jobs = make_jobs(names, [long_cfg, short_cfg], tmp_path / "out", threads=1)
    result: list = []
    runner = threading.Thread(target=lambda: result.append(
        run_batch(jobs, tmp_path / "out", EngineSettings("local", workers=2, threads=1))))
    runner.start()
    killed = False
    deadline = time.monotonic() + 180
    ckpts = jobs[0].run_dir / "checkpoints"
    while runner.is_alive() and time.monotonic() < deadline and not killed:
        ck = load_checkpoint(ckpts) if (ckpts / "latest.pt").is_file() else None
        if ck is not None and ck["stage"] == "joint" and ck["step"] >= 10:
            for child in multiprocessing.active_children():
                if child.name == "splat-batch:stool_long":
                    os.kill(child.pid, signal.SIGKILL)
                    killed = True
        time.sleep(0.05)
    runner.join(timeout=180)
    assert killed and result, "the long job was not caught mid-training"
    dead, ok = result[0].rows
    assert dead.status == "error" and "worker process died (exit status -9)" in dead.error
    assert ok.ok and result[0].failed == 1
    again = run_batch(jobs, tmp_path / "out", EngineSettings("local", workers=2, threads=1))
    assert [r.status for r in again.rows] == ["ok", "ok"] and again.rows[1].skipped
    assert again.rows[0].resumed_from is not None and again.rows[0].resumed_from >= 10
    assert [JobRow.from_dict(r) for r in _rows(tmp_path / "out")] == list(again.rows)
