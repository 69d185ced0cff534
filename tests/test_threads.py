"""How torch's CPU threads wait and how many there are (``trainer/threads.py``): after an operation they stop
spinning soon, for every refinery command, unless the user chose how they wait; a run trains on the cores
free when it starts and keeps that count when it resumes; a sweep trial computes on its task's CPUs and
gives the caller's thread count back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.helpers import ROOT
from trainer.checkpoint import CheckpointError
from trainer.threads import SPIN_COUNT, bound_spinning, choose_threads, free_cores, task_threads

# the CPU time torch's threads use while the main thread sleeps between parallel matrix products, in a fresh
# process that loads torch the way `refinery generate` does (pipeline.models.inference imports torch first)
IDLE_CPU = """
import json, os, resource, time
import pipeline.models.inference
import torch

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

x = torch.randn(512, 512)
x @ x
idle = 0.0
for _ in range(40):
    x @ x
    before = cpu()
    time.sleep(0.01)
    idle += cpu() - before
print(json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT"), "threads": torch.get_num_threads(), "idle": idle}))
"""


def idle_cpu(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    done = subprocess.run(
        [sys.executable, "-c", IDLE_CPU], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="torch runs one thread here: nothing waits")
def test_waiting_threads_stop_spinning_soon_unless_the_user_chooses_to_spin():
    ours = idle_cpu()
    spinning = idle_cpu(GOMP_SPINCOUNT="300000")  # libgomp's own default, chosen by the user
    assert ours["spin"] == str(SPIN_COUNT) and spinning["spin"] == "300000"
    assert ours["threads"] == spinning["threads"] >= 2  # how they wait changes, not how many there are
    # spinning keeps a thread busy for milliseconds after every product (~50 ms over these 40 sleeps here)
    assert ours["idle"] * 4 < spinning["idle"], (ours, spinning)


@pytest.mark.parametrize(
    "given, expected",
    [({}, str(SPIN_COUNT)), ({"GOMP_SPINCOUNT": "300000"}, "300000"), ({"OMP_WAIT_POLICY": "ACTIVE"}, None)],
)
def test_a_users_own_way_of_waiting_is_kept(monkeypatch, given, expected):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    for key, value in given.items():
        monkeypatch.setenv(key, value)
    bound_spinning()
    assert os.environ.get("GOMP_SPINCOUNT") == expected


def test_a_task_computes_on_its_cpus_and_gives_the_callers_threads_back():
    before = torch.get_num_threads()
    for cpus, threads in ((1, 1), (2, 2), (0.5, 1), (3.9, 3)):
        with task_threads(cpus):
            assert torch.get_num_threads() == threads
        assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="trial failed"), task_threads(1):
        raise RuntimeError("trial failed")
    assert torch.get_num_threads() == before


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores: one to keep busy")
def test_a_busy_core_is_not_counted_as_free():
    cpus = sorted(os.sched_getaffinity(0))
    busy = subprocess.Popen(
        [sys.executable, "-c", f"import os\nos.sched_setaffinity(0, {{{cpus[0]}}})\nwhile True: pass"]
    )
    try:
        import time

        time.sleep(0.3)
        free = free_cores(0.5)
    finally:
        busy.kill()
        busy.wait()
    assert free is not None and 0 <= free <= len(cpus) - 0.5  # other work can only make fewer cores free


def test_the_thread_count_a_user_or_a_checkpoint_gives_wins_over_the_free_cores(monkeypatch):
    assert choose_threads(3, saved=2)[0] == 3  # [train] threads
    assert choose_threads(0, saved=2) == (2, "as when the run started (the checkpoint records it)")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads() == (torch.get_num_threads(), "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    threads, why = choose_threads()
    assert 1 <= threads <= torch.get_num_threads() and "cores free" in why
    from tokenizer.errors import ConfigError
    from trainer.config import LoopConfig

    with pytest.raises(ConfigError, match="threads: must be >= 0"):
        LoopConfig(threads=-1)


def test_a_run_resumes_on_the_thread_count_it_started_with(monkeypatch, tmp_path):
    """Started on one thread (here chosen by [train] threads), interrupted, and resumed with the default (the
    free cores): the resumed run keeps one thread and reproduces the uninterrupted run's losses."""
    from tests.test_trainer import config, losses_by_step, write_shards
    from trainer.loop import Trainer

    shards = write_shards(tmp_path / "data")
    monkeypatch.delenv("OMP_NUM_THREADS")
    before = torch.get_num_threads()
    try:
        whole = Trainer(config(shards, tmp_path / "whole", steps=12, threads=1), progress=False)
        whole.run()
        first = Trainer(config(shards, tmp_path / "split", steps=12, threads=1, checkpoint_every=5), progress=False)
        first.run(stop_after=7)
        resumed = Trainer(config(shards, tmp_path / "split", steps=12, checkpoint_every=5), progress=False)
        assert resumed.step == 5 and resumed.threads == 1 == torch.get_num_threads()
        resumed.run()
        assert losses_by_step(tmp_path / "split" / "metrics.jsonl") == losses_by_step(
            tmp_path / "whole" / "metrics.jsonl"
        )
        checkpoint = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
        assert checkpoint["threads"] == 1
        checkpoint["threads"] = 10**9  # a crafted count is refused, not handed to OpenMP
        torch.save(checkpoint, tmp_path / "split" / "checkpoint.pt")
        with pytest.raises(CheckpointError, match="not a thread count"):
            Trainer(config(shards, tmp_path / "split", steps=12), progress=False)
    finally:
        torch.set_num_threads(before)
