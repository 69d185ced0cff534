"""Runs on object storage, against a real S3 server (SeaweedFS on loopback): inputs and run directory on
``s3://`` give what a local run gives, ``stats`` / ``report`` / ``sample`` read them, storage settings come
from the workflow file and reach the Ray workers, and no credential is written anywhere."""

from __future__ import annotations

import json
import os

import fsspec
import pytest

from pipeline.cli import main
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests import s3server
from tests.helpers import WARC_DIR
from tokenizer.errors import ConfigError

pytestmark = pytest.mark.usefixtures("ray_session")
INPUTS = sorted(WARC_DIR.glob("dolma/*.warc.gz")) + [WARC_DIR / "pywb" / "iana.warc.gz"]

STAGES = """
[[stages]]
kind = "extract"
[[stages]]
kind = "filter"
name = "quality"
  [[stages.filters]]
  kind = "language"
  languages = ["en"]
  [[stages.filters]]
  kind = "gopher_quality"
  [[stages.filters]]
  kind = "pii"
[[stages]]
kind = "exact_dedup"
[[stages]]
kind = "minhash_dedup"
[[stages]]
kind = "line_dedup"
[[stages]]
kind = "tokenize"
vocab_size = 400
"""


def workflow(path, *, name: str, output: str, inputs: list[str], storage: str = "") -> str:
    text = f'[run]\nname = "{name}"\noutput = "{output}"\n[input]\npaths = {json.dumps(inputs)}\n'
    text += 'split_bytes = "128KiB"\n' + storage + STAGES
    path.write_text(text)
    return str(path)


def funnel(stats: dict) -> list:
    return [(s["stage"], s["docs_in"], s["docs_kept"], s["dropped"], s["bytes_kept"]) for s in stats["stages"]]


def tree(fs, root: str) -> dict[str, bytes]:
    """Every file under ``root`` (relative name -> bytes) that a run writes as its result."""
    out = {}
    for path in fs.find(root):
        name = path[len(root.rstrip("/")) + 1 :]
        if name.split("/")[1:2] in (["kept"], ["rejected"], ["shards"]) or name.endswith("tokenizer/vocab.json"):
            out[name] = fs.cat_file(path)
    return out


@pytest.fixture(scope="module")
def uploaded(s3):
    fs = fsspec.filesystem("s3", **s3.storage, skip_instance_cache=True)
    for path in INPUTS:
        fs.put_file(str(path), f"{s3.bucket}/inputs/{path.parent.name}/{path.name}")
    return f"s3://{s3.bucket}/inputs/*/*.warc.gz"


def test_an_s3_run_equals_a_local_run_and_reads_back_without_credentials_in_it(s3_env, uploaded, tmp_path, capsys):
    local = run_workflow(
        load_workflow(workflow(tmp_path / "l.toml", name="l", output=str(tmp_path), inputs=[str(p) for p in INPUTS])),
        progress=False,
    )
    storage = f'[storage]\nendpoint_url = "{s3_env.endpoint}"\nregion = "us-east-1"\n'
    wf = workflow(
        tmp_path / "s.toml", name="s", output=f"s3://{s3_env.bucket}/runs", inputs=[uploaded], storage=storage
    )
    remote = run_workflow(load_workflow(wf), progress=False)
    assert remote["run"]["complete"] and funnel(remote) == funnel(local)
    fs = fsspec.filesystem("s3")
    ours, theirs = tree(fs, f"{s3_env.bucket}/runs/s"), tree(fsspec.filesystem("file"), str(tmp_path / "l"))
    assert ours.keys() == theirs.keys() and len(ours) > 10
    for name in ours:
        if name.endswith(".parquet"):  # the same documents; `source` names the input where it was read
            import io

            import pyarrow.parquet as pq

            a, b = (pq.read_table(io.BytesIO(x)).drop_columns(["source"]) for x in (ours[name], theirs[name]))
            assert a.equals(b), name
        else:
            assert ours[name] == theirs[name], name
    url = f"s3://{s3_env.bucket}/runs/s"
    assert main(["stats", url]) == 0 and "minhash_dedup" in capsys.readouterr().out
    assert main(["report", url]) == 0 and f"report: {url}/report.html" in capsys.readouterr().out
    assert main(["report", url, "--output", str(tmp_path / "r.html")]) == 0  # a local path stays local
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>") and not os.path.exists("abs")
    reason = next(r for s in remote["stages"] for r in s["dropped"])
    assert main(["sample", url, "--reason", reason, "-n", "1"]) == 0 and "---" in capsys.readouterr().out
    secrets = (s3server.ACCESS_KEY.encode(), s3server.SECRET_KEY.encode())
    for path in fs.find(f"{s3_env.bucket}/runs/s"):
        data = fs.cat_file(path)
        assert not any(secret in data for secret in secrets), path


def test_wrong_storage_settings_fail_before_any_work_naming_the_key(s3_env, uploaded, tmp_path):
    bad = {
        'endpoint_url = "127.0.0.1:8333"\n': "storage.endpoint_url",
        'profile = "nobody-has-this-profile"\n': "storage.profile",
        "anonymous = 1\n": "storage.anonymous",
        'bucket = "x"\n': "storage.bucket",
    }
    for line, key in bad.items():
        wf = workflow(
            tmp_path / "w.toml", name="w", output=str(tmp_path), inputs=[uploaded], storage="[storage]\n" + line
        )
        with pytest.raises(ConfigError) as err:
            load_workflow(wf)
        assert err.value.key == key, str(err.value)
    wf = workflow(
        tmp_path / "w.toml", name="w", output=str(tmp_path), inputs=[uploaded], storage="[storage]\nanonymous = true\n"
    )
    with pytest.raises(ConfigError, match=r"input.paths\[0\]"):  # the server refuses anonymous listings
        load_workflow(wf)


NODE_KILL_SCRIPT = """
import json, os, sys, threading, time
import fsspec
keys = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
for name in keys:
    del os.environ[name]  # the nodes start without credentials, as on a cluster whose image has none
os.environ["RAY_AUTH_MODE"] = "disabled"
from ray.cluster_utils import Cluster
cluster = Cluster(
    initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False}
)
worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
os.environ.update(keys)  # the driver has them; the workflow's [storage] table and these travel to the tasks
# Ray turns 127.0.0.1 in an address into the host's address, where this loopback cluster does not listen
address = cluster.address.replace("127.0.0.1", "[::ffff:127.0.0.1]")
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
result = {}
driver = threading.Thread(target=lambda: result.update(stats=run_workflow(
    load_workflow(sys.argv[1]), address=address, progress=False)))
driver.start()
fs, markers = fsspec.filesystem("s3"), sys.argv[2]
def done():
    fs.invalidate_cache()
    return len(fs.ls(markers)) if fs.exists(markers) else 0
while driver.is_alive() and done() < 2:
    time.sleep(0.1)
killed = driver.is_alive()
if killed:
    cluster.remove_node(worker, allow_graceful=False)  # SIGKILL of the node's raylet and its workers
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
driver.join()
print("RESULT", json.dumps({"killed": killed, "stats": result.get("stats")}), flush=True)
import ray
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
def test_a_worker_node_without_credentials_killed_mid_stage_changes_nothing(s3_env, uploaded, tmp_path):
    """A two-node cluster whose nodes have no credentials (the workflow's [storage] table and the driver's
    keys travel to its tasks), its worker node SIGKILLed mid-stage and replaced: the same result as a local run."""
    import subprocess
    import sys

    from tests.helpers import ROOT, server_timeout

    local = run_workflow(
        load_workflow(workflow(tmp_path / "l.toml", name="l", output=str(tmp_path), inputs=[str(p) for p in INPUTS])),
        progress=False,
    )
    storage = f'[storage]\nendpoint_url = "{s3_env.endpoint}"\n'
    output = f"s3://{s3_env.bucket}/node-kill"
    wf = workflow(tmp_path / "n.toml", name="n", output=output, inputs=[uploaded], storage=storage)
    script = subprocess.run(
        [sys.executable, "-c", NODE_KILL_SCRIPT, wf, f"{s3_env.bucket}/node-kill/n/quality/stats"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=server_timeout(300),
    )
    assert script.returncode == 0, script.stderr[-3000:]
    outcome = json.loads(next(line for line in script.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert outcome["killed"] and funnel(outcome["stats"]) == funnel(local)


@pytest.mark.slow
def test_a_driver_killed_mid_run_on_s3_then_rerun_equals_a_local_run(s3_env, uploaded, tmp_path, ray_session):
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import server_timeout

    local = run_workflow(
        load_workflow(workflow(tmp_path / "l.toml", name="l", output=str(tmp_path), inputs=[str(p) for p in INPUTS])),
        progress=False,
    )
    storage = f'[storage]\nendpoint_url = "{s3_env.endpoint}"\n'
    wf = workflow(
        tmp_path / "d.toml", name="d", output=f"s3://{s3_env.bucket}/driver-kill", inputs=[uploaded], storage=storage
    )
    address = ray_session.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "pipeline", "run", wf, "--address", address, "--no-progress"]
    fs = fsspec.filesystem("s3")
    markers = f"{s3_env.bucket}/driver-kill/d/quality/stats"

    def done() -> int:
        fs.invalidate_cache()
        return len(fs.ls(markers)) if fs.exists(markers) else 0

    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + server_timeout(300)
    while driver.poll() is None and done() < 3 and time.time() < deadline:
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert 0 < done() < 11, done()  # killed mid-stage
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=server_timeout(600))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "done before, skipped" in rerun.stderr  # the rerun said what it found done
    remote = json.loads(fs.cat_file(f"{s3_env.bucket}/driver-kill/d/stats.json"))
    assert funnel(remote) == funnel(local)


def test_training_from_s3_shards_into_s3_equals_local_training_and_resumes_exactly(s3_env, tmp_path, monkeypatch):
    """Shards on S3, checkpoints and metrics written to S3 (through a local mirror, the checkpoint uploaded
    last), a run interrupted and resumed from what S3 holds: loss for loss the run on local files."""
    from pipeline.stages.tokenize import write_shard
    from tests.test_trainer import BPE, config, losses_by_step
    from tokenizer.bpe import Tokenizer
    from tokenizer.train import train_bpe
    from trainer.loop import Trainer

    monkeypatch.setenv("REFINERY_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "local"
    vocab, merges = train_bpe(BPE / "corpus.en", 512, ["<|endoftext|>"])
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    tokenizer.save(root / "tokenizer")
    write_shard(str(root / "shards" / "a"), (BPE / "corpus.en").read_text().split("\n\n"), tokenizer, "<|endoftext|>")
    stories = (BPE / "tinystories_sample.txt").read_text().split("<|endoftext|>")
    write_shard(str(root / "shards" / "b"), stories * 4, tokenizer, "<|endoftext|>")
    fs = fsspec.filesystem("s3")
    fs.put(str(root) + "/", f"{s3_env.bucket}/train-data/", recursive=True)
    local = Trainer(config(root, tmp_path / "out"), progress=False)
    local.run()
    remote_data = f"s3://{s3_env.bucket}/train-data"
    out = f"s3://{s3_env.bucket}/train-out"

    def remote_config(**train):
        c = config(root, out, **train)
        c.data.train = [f"{remote_data}/shards/*"]
        return c

    Trainer(remote_config(checkpoint_every=10), progress=False).run(stop_after=13)
    assert fs.exists(f"{s3_env.bucket}/train-out/checkpoint.pt")
    resumed = Trainer(remote_config(checkpoint_every=10), progress=False)
    assert resumed.step == 10  # from the checkpoint on S3
    resumed.run()
    remote_metrics = tmp_path / "remote-metrics.jsonl"
    fs.get_file(f"{s3_env.bucket}/train-out/metrics.jsonl", str(remote_metrics))
    assert losses_by_step(remote_metrics) == losses_by_step(tmp_path / "out" / "metrics.jsonl")
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{s3_env.bucket}/train-out")}
    assert {"checkpoint.pt", "metrics.jsonl", "training.json", "tokenizer"} <= names
    assert not any(n.startswith("s3:") for n in os.listdir(tmp_path)) and not os.path.exists("s3:")
