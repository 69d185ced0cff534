"""Connecting to Ray: a cluster at an address (``--address``, or ``RAY_ADDRESS`` as ``ray job submit`` sets
it), else a local Ray bound to loopback."""

from __future__ import annotations

import logging
import os


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray on loopback."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level=logging.WARNING)


def capacity() -> dict[str, float]:
    """The cluster's CPUs and GPUs (connect first)."""
    import ray

    resources = ray.cluster_resources()
    return {"CPU": float(resources.get("CPU", 0)), "GPU": float(resources.get("GPU", 0))}
