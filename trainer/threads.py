"""How torch's CPU threads wait and how many there are, so that training, fine-tuning, sweeps and generation
on a CPU that other work shares slow down by about the share of it they lose, not 7-20 times.

Torch computes on OpenMP threads (libgomp, in the Linux wheels). A thread that has done its part of an
operation waits for the next one by spinning, by default for 300,000 iterations (about 2 ms here) before it
sleeps. On an idle machine that starts the next operation at once; on a busy one the spinning threads hold
cores that the thread they wait for needs. Bounded to :data:`SPIN_COUNT` iterations (``GOMP_SPINCOUNT``),
they sleep soon instead. libgomp reads the setting once, when torch loads, so :func:`bound_spinning` runs
when ``trainer`` is imported, and ``pipeline.models`` imports ``trainer`` first for every command. A user's
``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins; a script that imports torch before ``trainer`` keeps
libgomp's default.

How many threads: the cores that are free when a run starts (:func:`free_cores`, sampled from
``/proc/stat``; all of them when none is), at most torch's default (the cores this process may use,
``OMP_NUM_THREADS``, or in a sweep trial its task's CPUs: :func:`task_threads`). A training run keeps that
number for its whole life, its resumptions included (the checkpoint records it): the number of threads
changes the order in which torch sums (a mixture of experts trains to other bits on 1 and 2 threads), and a
resumed run must reproduce the uninterrupted one exactly, whatever the machine did meanwhile.
``[train] threads`` or ``OMP_NUM_THREADS`` choose it instead. Measured on the demo model
(``benchmarks/bench_busy_machine.py``, numbers in ``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

# iterations a waiting OpenMP thread spins before it sleeps (libgomp's default: 300,000): 5,000 kept the demo
# model within 10 % of its idle speed in three runs of benchmarks/bench_busy_machine.py, 3,000 not always
SPIN_COUNT = 5000


def bound_spinning() -> None:
    """Make torch's OpenMP threads sleep after :data:`SPIN_COUNT` spins, unless the user chose how they wait;
    it takes effect only if torch has not been imported yet."""
    if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


@contextlib.contextmanager
def task_threads(cpus: float) -> Iterator[None]:
    """Torch on as many threads as a task has CPUs (at least one), and back on the caller's count afterwards
    (a local executor runs tasks in the caller's process)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, math.floor(cpus)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def free_cores(sample_s: float = 0.2) -> float | None:
    """How many of the cores this process may use sat idle over the next ``sample_s`` seconds (from
    ``/proc/stat``); None where that cannot be read."""
    try:
        cpus = os.sched_getaffinity(0)
        before = _idle_and_total(cpus)
        time.sleep(sample_s)
        after = _idle_and_total(cpus)
    except (OSError, AttributeError, ValueError):
        return None
    idle, total = after[0] - before[0], after[1] - before[1]
    return len(cpus) * idle / total if total > 0 else None


def _idle_and_total(cpus: set[int]) -> tuple[int, int]:
    """Idle (idle + iowait) and all clock ticks of ``cpus`` so far."""
    idle = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
                idle += ticks[3] + ticks[4]
                total += sum(ticks)
    return idle, total


def choose_threads(requested: int = 0, saved: int | None = None) -> tuple[int, str]:
    """The number of CPU threads for a run, and why: ``requested`` (``[train] threads``) when set, else the
    number a resumed run's checkpoint recorded (``saved``), else torch's default where the user set
    ``OMP_NUM_THREADS``, else the cores free now, at most torch's default; when no core is free, torch's
    default, since a thread on every shared core gets more of the machine than one thread on one."""
    import torch

    default = torch.get_num_threads()
    if requested > 0:
        return requested, "set by [train] threads"
    if saved:
        return saved, "as when the run started (the checkpoint records it)"
    if "OMP_NUM_THREADS" in os.environ:
        return default, "OMP_NUM_THREADS"
    free = free_cores()
    if free is None:
        return default, "torch's default"
    cores = f"{free:.1f} of {len(os.sched_getaffinity(0))} cores free"
    if free < 0.5:  # every core is shared: a thread on each gets a share of each
        return default, cores
    return min(default, int(free + 0.5)), cores
