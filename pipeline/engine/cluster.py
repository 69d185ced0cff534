"""Connecting to Ray: a cluster at an address (``--address``, or ``RAY_ADDRESS`` as ``ray job submit`` sets
it), else a local Ray bound to loopback. A connection this module made is left with :func:`disconnect`, so
that the workers of the document stages (each holding its models and buffers) do not sit on memory while a
model trains in the same process."""

from __future__ import annotations

import logging
import os
import sys
import time

_connected_here = False  # whether this process's Ray connection was made by connect()
CLIENT_ATTEMPTS = 3  # tries of a ray:// connection whose server fails to start


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (or ``RAY_ADDRESS``), else start a local Ray on loopback.
    A connection made before (by the caller, or a test session) is used as it is."""
    global _connected_here
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _join(ray, address)
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(
            address="local",  # not whatever other Ray runs on this host (Ray's default joins the latest one)
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
        )
    _connected_here = True


def _join(ray, address: str, attempts: int = CLIENT_ATTEMPTS) -> None:
    """``ray.init`` at ``address``. Through ``ray://`` the cluster starts a server process for this client,
    and that start sometimes fails at once ("Starting Ray client server failed"): it is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, logging_level=logging.WARNING)
            return
        except ConnectionAbortedError as exc:
            if not address.startswith("ray://") or attempt == attempts:
                raise
            logging.getLogger("refinery").warning("%s: %s; trying again", address, str(exc).splitlines()[0])
            ray.shutdown()  # what the failed start left of the client connection
            time.sleep(attempt)


def disconnect() -> None:
    """Leave Ray if :func:`connect` joined it (a local Ray it started stops, with all its workers); a
    connection someone else made stays."""
    global _connected_here
    ray = sys.modules.get("ray")
    if _connected_here and ray is not None and ray.is_initialized():
        ray.shutdown()
    _connected_here = False


def capacity() -> dict[str, float]:
    """The cluster's CPUs and GPUs (connect first)."""
    import ray

    resources = ray.cluster_resources()
    return {"CPU": float(resources.get("CPU", 0)), "GPU": float(resources.get("GPU", 0))}
