"""A separate Ray cluster (head started with ``ray start``, from the ``cluster`` extra's ``ray[default,client]``)
driven the four ways a user would: ``refinery run --address HOST:PORT``, ``--address ray://HOST:PORT`` (Ray
Client), ``RAY_ADDRESS``, and ``ray job submit --working-dir . -- python -m pipeline run``."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from tests.helpers import ROOT, server_timeout

pytestmark = pytest.mark.slow
BIN = os.path.dirname(sys.executable)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not shutil.which("ray", path=BIN):
        pytest.skip("the ray command is not installed beside this Python")
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard, client = free_port(), free_port(), free_port()
    temp = tmp_path_factory.mktemp("ray")
    head = subprocess.Popen(
        [
            f"{BIN}/ray",
            "start",
            "--head",
            "--block",
            "--num-cpus=2",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={client}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait = server_timeout(60)  # a loaded machine starts the head slowly
    deadline = time.time() + wait
    while time.time() < deadline:
        probe = subprocess.run([f"{BIN}/ray", "status", f"--address=127.0.0.1:{gcs}"], env=env, capture_output=True)
        if probe.returncode == 0:
            break
        time.sleep(1)
    else:
        head.kill()
        pytest.fail(f"the Ray head did not come up within {wait:.0f} s")
    yield env, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{dashboard}", f"ray://127.0.0.1:{client}"
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:  # `ray start --block` takes half a minute to stop its processes
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()


def kept_ids(run_dir: str) -> list[str]:
    return sorted(pq.read_table(glob.glob(f"{run_dir}/quality/kept")[0], columns=["id"]).column("id").to_pylist())


def test_runs_on_an_existing_cluster_four_ways(cluster, tmp_path):
    env, gcs, dashboard, client = cluster
    demo = str(ROOT / "workflows" / "demo.toml")
    common = ["--no-progress", "--no-models"]  # the model steps run in the driver, not on the cluster
    by_address = subprocess.run(
        [f"{BIN}/refinery", "run", demo, "--address", gcs, "--output", str(tmp_path / "a"), *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=server_timeout(300),
    )
    assert by_address.returncode == 0, by_address.stderr[-2000:]
    by_env = subprocess.run(
        [f"{BIN}/refinery", "run", demo, "--output", str(tmp_path / "b"), *common],
        env={**env, "RAY_ADDRESS": gcs},
        capture_output=True,
        text=True,
        timeout=server_timeout(300),
    )
    assert by_env.returncode == 0, by_env.stderr[-2000:]
    by_client = subprocess.run(
        [f"{BIN}/refinery", "run", demo, "--address", client, "--output", str(tmp_path / "d"), *common],
        env=env,
        capture_output=True,
        text=True,
        timeout=server_timeout(300),
    )
    assert by_client.returncode == 0, by_client.stderr[-2000:]
    job = subprocess.run(
        [
            f"{BIN}/ray",
            "job",
            "submit",
            "--address",
            dashboard,
            "--working-dir",
            str(ROOT),
            "--",
            "python",
            "-m",
            "pipeline",
            "run",
            "workflows/demo.toml",
            "--output",
            str(tmp_path / "c"),
            *common,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=server_timeout(300),
        cwd=ROOT,
    )
    assert job.returncode == 0, (job.stdout + job.stderr)[-2000:]
    assert "succeeded" in job.stdout + job.stderr
    reference = kept_ids(str(tmp_path / "a" / "demo"))
    assert len(reference) > 10
    for other in "bcd":
        assert kept_ids(str(tmp_path / other / "demo")) == reference, other


def test_a_run_without_an_address_starts_its_own_ray_beside_a_cluster_on_the_host(cluster, tmp_path):
    """Ray's default joins the latest Ray it finds on the host: `refinery run` without an address would have
    run on the cluster (or, with --num-cpus, failed: "num_cpus must not be provided"); it starts its own."""
    env, _, _, _ = cluster
    demo = str(ROOT / "workflows" / "demo.toml")
    alone = subprocess.run(
        [f"{BIN}/refinery", "run", demo, "--num-cpus", "1", "--output", str(tmp_path), "--no-progress", "--no-models"],
        env=env,
        capture_output=True,
        text=True,
        timeout=server_timeout(300),
    )
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "Connecting to latest cluster" not in alone.stderr
