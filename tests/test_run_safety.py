"""What a careless flag or a second process can do to a run: overlapping inputs and outputs, --restart,
two processes in one folder, temporary files left by kills, Ctrl-C and SIGTERM, and the wall time of a run
resumed over several invocations."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pipeline.engine.executor import LocalExecutor
from pipeline.locks import LOCK_NAME, FolderLock, FolderLocked, _process_start
from pipeline.rundir import RunDir
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import ROOT, WARC_DIR
from tokenizer.errors import ConfigError

SAMPLE = WARC_DIR / "dolma" / "sample-0000.warc.gz"


def workflow(path, *, name: str, output: str, inputs: list[str]) -> str:
    text = f"""
[run]
name = "{name}"
output = "{output}"
[input]
paths = {json.dumps(inputs)}
[[stages]]
kind = "extract"
[[stages]]
kind = "filter"
  [[stages.filters]]
  kind = "gopher_quality"
"""
    path.write_text(text)
    return str(path)


def test_inputs_inside_the_run_directory_are_refused_and_restart_keeps_foreign_files(tmp_path):
    """The reported case: output = "data", name = "cc", inputs data/cc/warc/*.warc.gz. --restart deleted them."""
    warcs = tmp_path / "data" / "cc" / "warc"
    warcs.mkdir(parents=True)
    shutil.copy(SAMPLE, warcs / "a.warc.gz")
    (tmp_path / "data" / "cc" / "notes.txt").write_text("mine")
    wf = workflow(tmp_path / "wf.toml", name="cc", output="data", inputs=["data/cc/warc/*.warc.gz"])
    with pytest.raises(ConfigError, match=r"inside the run directory"):
        load_workflow(wf)
    # a file given by name, not by glob, is caught too
    wf = workflow(tmp_path / "wf.toml", name="cc", output="data", inputs=["data/cc/warc/a.warc.gz"])
    with pytest.raises(ConfigError, match=r"inside the run directory"):
        load_workflow(wf)
    # --output on the command line is checked the same way when the run starts
    wf = workflow(tmp_path / "wf.toml", name="cc", output="elsewhere", inputs=["data/cc/warc/a.warc.gz"])
    with pytest.raises(ConfigError, match=r"--output: .*inside the run directory"):
        run_workflow(load_workflow(wf), output=str(tmp_path / "data"), executor=LocalExecutor(progress=False))
    assert (warcs / "a.warc.gz").exists() and (tmp_path / "data" / "cc" / "notes.txt").exists()


def test_restart_deletes_only_what_the_run_wrote(tmp_path):
    wf = workflow(tmp_path / "wf.toml", name="r", output=str(tmp_path / "runs"), inputs=[str(SAMPLE)])
    first = run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))
    run_dir = first["run"]["run_dir"]
    (tmp_path / "runs" / "r" / "my-notes.txt").write_text("keep me")
    (tmp_path / "runs" / "r" / "other-tool").mkdir()
    again = run_workflow(load_workflow(wf), restart=True, executor=LocalExecutor(progress=False))
    assert again["stages"][0]["docs_in"] == first["stages"][0]["docs_in"]
    assert (tmp_path / "runs" / "r" / "my-notes.txt").read_text() == "keep me"
    assert (tmp_path / "runs" / "r" / "other-tool").is_dir()
    # a folder that is not a refinery run is never emptied
    stranger = tmp_path / "runs" / "stranger"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("years of work")
    with pytest.raises(ValueError, match="not a refinery run"):
        RunDir(str(stranger)).remove(["extract"])
    assert (stranger / "thesis.tex").exists() and os.path.isdir(run_dir)


def test_a_run_directory_held_by_a_live_process_is_refused_and_a_dead_holders_lock_is_taken_over(tmp_path):
    wf = workflow(tmp_path / "wf.toml", name="l", output=str(tmp_path / "runs"), inputs=[str(SAMPLE)])
    run_dir = tmp_path / "runs" / "l"
    run_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {
            "host": os.uname().nodename,
            "pid": holder.pid,
            "process_start": _process_start(holder.pid),
            "token": "other",
            "heartbeat": time.time(),
        }
        (run_dir / LOCK_NAME).write_text(json.dumps(record))
        with pytest.raises(FolderLocked, match=rf"in use by pid {holder.pid}"):
            run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))
        with pytest.raises(FolderLocked):  # --restart must not pull the folder from under the holder either
            run_workflow(load_workflow(wf), restart=True, executor=LocalExecutor(progress=False))
    finally:
        holder.kill()
        holder.wait()
    stats = run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))  # the holder is gone
    assert stats["run"]["complete"] and not (run_dir / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_stale_only_when_its_heartbeat_stopped(tmp_path):
    lock_file = tmp_path / LOCK_NAME
    lock_file.write_text(json.dumps({"host": "node-7", "pid": 1, "token": "x", "heartbeat": time.time()}))
    with pytest.raises(FolderLocked, match="node-7"):
        FolderLock(str(tmp_path)).acquire()
    lock_file.write_text(json.dumps({"host": "node-7", "pid": 1, "token": "x", "heartbeat": time.time() - 3600}))
    lock = FolderLock(str(tmp_path)).acquire()
    assert json.loads(lock_file.read_text())["token"] == lock.token
    lock.release()
    assert not lock_file.exists()


def test_two_trainings_into_one_out_dir_the_second_is_refused(tmp_path):
    """Two `refinery train` processes into one out_dir used to resume each other's checkpoints."""
    from pipeline.cli import main

    out_dir = tmp_path / "train"
    with FolderLock(str(out_dir), "training out_dir"):
        code = main(["train", str(ROOT / "workflows" / "train.toml"), "--set", f'train.out_dir="{out_dir}"'])
    assert code == 2


def test_a_rerun_removes_the_temporary_files_of_a_killed_run(tmp_path):
    wf = workflow(tmp_path / "wf.toml", name="t", output=str(tmp_path / "runs"), inputs=[str(SAMPLE)])
    run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))
    kept = tmp_path / "runs" / "t" / "extract" / "kept"
    leftover = kept / "000000-0000.parquet.tmp-1a2b3c4d5e6f"
    leftover.write_bytes(b"half a file")
    (tmp_path / "runs" / "t" / "stats.json.tmp-ffffffffffff").write_text("{")
    run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))
    assert not list((tmp_path / "runs" / "t").rglob("*.tmp-*"))


def test_the_wall_time_adds_up_every_invocation_of_a_resumed_run(tmp_path):
    wf = workflow(tmp_path / "wf.toml", name="w", output=str(tmp_path / "runs"), inputs=[str(SAMPLE)])
    first = run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))["run"]
    second = run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))["run"]
    assert first["invocations"] == 1 and second["invocations"] == 2
    assert second["wall_s"] >= first["wall_s"] + second["invocation_wall_s"] - 0.01


@pytest.mark.slow
def test_sigterm_and_ctrl_c_print_one_line_and_release_the_run(tmp_path):
    wf = workflow(tmp_path / "wf.toml", name="s", output=str(tmp_path / "runs"), inputs=[str(SAMPLE)])
    lock = tmp_path / "runs" / "s" / LOCK_NAME
    for sig, delay in ((signal.SIGTERM, 0.0), (signal.SIGINT, 0.0), (signal.SIGINT, 1.5)):  # 1.5 s: Ray starting
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", wf, "--no-progress", "--num-cpus", "1"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        )
        deadline = time.time() + 120
        while not lock.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal arrived: nothing to check this time
            continue
        assert proc.returncode == 130, err
        assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err, err
        assert not lock.exists()


@pytest.mark.slow
def test_the_local_ray_is_stopped_before_the_models_train(tmp_path):
    """The document stages' idle Ray workers (each holding its filters' models) used to stay alive, holding
    memory, while the workflow's [train] step ran in the driver."""
    wf = tmp_path / "wf.toml"
    wf.write_text(
        f'[run]\nname = "m"\noutput = "{tmp_path}/runs"\n[input]\npaths = ["{SAMPLE}"]\n'
        '[[stages]]\nkind = "extract"\n[[stages]]\nkind = "tokenize"\nvocab_size = 300\n'
        f'[train]\nconfig = "{ROOT}/workflows/train.toml"\n'
    )
    script = f"""
import sys
import pipeline.models.steps as steps
def record(workflow, run_dir, progress=True):
    import ray
    print("ray while training:", ray.is_initialized())
    return {{}}
steps.run_model_steps = record
from pipeline.cli import main
sys.exit(main(["run", {str(wf)!r}, "--no-progress", "--num-cpus", "1"]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ray while training: False" in out.stdout


def test_a_resumed_run_says_what_it_skipped(tmp_path, caplog):
    wf = workflow(tmp_path / "wf.toml", name="k", output=str(tmp_path / "runs"), inputs=[str(SAMPLE)])
    run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))
    marker = next((tmp_path / "runs" / "k" / "filter" / "stats").glob("*.json"))
    marker.unlink()  # one shard of the second stage left to redo
    with caplog.at_level("INFO", logger="refinery"):
        run_workflow(load_workflow(wf), executor=LocalExecutor(progress=False))
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("extract: ") and "shards done before, skipped" in m for m in said), said
