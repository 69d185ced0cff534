"""Faults injected on purpose: the driver SIGKILLed at random points and rerun, a Ray worker killed
mid-stage, real WARC files mutated at random, a trainer killed while writing its checkpoint. Each must end
with nothing lost, nothing duplicated and no crash."""

from __future__ import annotations

import gzip
import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter

import pytest

from filters.extract import HtmlExtractor
from filters.warc import ReadIssue, iter_records
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import ROOT, SAMPLE_WARCS, WARC_DIR
from tests.hostile import gzip_units, mixed, mutate_units, within
from tests.test_run import snapshot
from trainer.checkpoint import load_checkpoint

BIN = os.path.dirname(sys.executable)
DEMO = str(ROOT / "workflows" / "demo.toml")
MUTATIONS_PER_FILE = 6  # for each mutation kind
SECONDS_PER_RECORD = 5.0  # "no hang": a generous bound for one record on a loaded 2-core machine


def comparable(snap: dict, run_dir: str) -> dict:
    """A run's snapshot with its own directory name taken out."""
    run = dict(snap["stats"]["run"], run_dir="")
    return {"files": snap["files"], "stats": {**snap["stats"], "run": run}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_session):
    """An uninterrupted run of the demo workflow."""
    stats = run_workflow(load_workflow(DEMO), output=str(tmp_path_factory.mktemp("ref")), progress=False)
    return comparable(snapshot(stats["run"]["run_dir"]), stats["run"]["run_dir"])


@pytest.mark.slow
def test_a_driver_killed_at_random_points_then_rerun_equals_an_uninterrupted_run(reference, ray_session, tmp_path):
    """Four SIGKILLs of ``refinery run`` at random points of its progress (on the session's Ray cluster, so the
    kills hit the driver only), then the same command to the end: the same documents, texts, reasons and
    statistics."""
    address = ray_session.get_runtime_context().gcs_address
    command = [f"{BIN}/refinery", "run", DEMO, "--output", str(tmp_path), "--address", address, "--no-progress"]
    command.append("--no-models")  # the document stages; the trainer's own kill tests cover the model steps
    rng = random.Random(11)
    progress = []  # shard markers present when each kill landed
    markers = tmp_path / "demo"
    for target in sorted(rng.sample(range(5, 115), 4)):  # of 120 shard-stages: random points, later each time
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and len(list(markers.glob("*/stats/*.json"))) < target:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        progress.append(len(list(markers.glob("*/stats/*.json"))))
    final = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert comparable(snapshot(str(tmp_path / "demo")), str(tmp_path / "demo")) == reference
    assert len(set(progress)) > 1 and min(progress) < 120, progress  # kills at different points, mid-run
    print(f"\ndriver killed 4 times, after {progress} finished shard-stages; rerun equals the reference")


def ray_task_workers() -> list[int]:
    """PIDs of Ray worker processes running one of our tasks (their title is ``ray::_call``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::_call"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_ray_worker_killed_during_a_stage_is_retried_and_changes_nothing(reference, tmp_path):
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(stats=run_workflow(load_workflow(DEMO), output=str(tmp_path), progress=False))
    )
    runner.start()
    killed = 0
    while runner.is_alive() and killed < 3:
        for pid in ray_task_workers()[:1]:
            os.kill(pid, signal.SIGKILL)
            killed += 1
            time.sleep(1.0)
        time.sleep(0.02)
    runner.join(timeout=600)
    assert killed >= 1, "no task was running to kill"
    assert result["stats"]["run"]["complete"]
    assert comparable(snapshot(str(tmp_path / "demo")), "") == reference


# ---- the WARC reader and extraction on mutated real files ----------------------------------------------------


def members(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every gzip member of a file."""
    spans, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        spans.append((pos, end))
        pos = end
    return spans


def wrong_content_length(member: bytes, rng: random.Random) -> bytes:
    text = gzip.decompress(member)
    lying = re.sub(
        rb"(?i)(content-length:\s*)(\d+)",
        lambda m: m.group(1) + str(int(m.group(2)) + rng.choice((-40, 7, 5000))).encode(),
        text,
        count=1,
    )
    return gzip.compress(lying)


def mutate(data: bytes, spans: list, kind: str, rng: random.Random) -> tuple[bytes, set[int]]:
    """A mutated copy of ``data`` and the indexes of the members the mutation touched (their records may be
    lost; every other member's record must still be read)."""
    i = rng.randrange(len(spans))
    start, end = spans[i]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(start, end)] ^= 1 << rng.randrange(8)
        return bytes(out), {i}
    if kind == "cut_member":
        a = rng.randrange(start, end)
        b = min(end, a + rng.randint(1, 200))
        return data[:a] + data[b:], {i}
    if kind == "truncate":
        cut = rng.randrange(start, end)
        return data[:cut], set(range(i, len(spans)))
    if kind == "shuffle":
        order = list(range(len(spans)))
        rng.shuffle(order)
        return b"".join(data[spans[j][0] : spans[j][1]] for j in order), set()
    if kind == "content_length":
        return data[:start] + wrong_content_length(data[start:end], rng) + data[end:], {i}
    raise ValueError(kind)


def read_all(data: bytes) -> tuple[list, list[ReadIssue], float]:
    """Every record and read issue of a file, each record also extracted; the slowest item's seconds."""
    extractor = HtmlExtractor()
    records, issues, slowest = [], [], 0.0
    started = time.perf_counter()
    for item in iter_records(io.BytesIO(data)):
        if isinstance(item, ReadIssue):
            issues.append(item)
        else:
            extractor.extract(item, "mutated")  # returns a skip reason for what it cannot use; never raises
            records.append(item)
        now = time.perf_counter()
        slowest, started = max(slowest, now - started), now
    return records, issues, slowest


def record_keys(records) -> Counter:
    return Counter(r.headers.get("warc-record-id", "") + r.type for r in records)


def test_mutated_real_warc_files_never_crash_hang_or_lose_a_readable_record():
    kinds = ("flip", "cut_member", "truncate", "shuffle", "content_length")
    tried = Counter()
    rng = random.Random(2024)
    for path in SAMPLE_WARCS:
        data = path.read_bytes()
        if data[:2] != b"\x1f\x8b":
            continue
        spans = members(data)
        by_member = []
        for start, end in spans:
            records, _, _ = read_all(data[start:end])
            by_member.append(record_keys(records))
        for kind in kinds:
            for _ in range(MUTATIONS_PER_FILE):
                mutated, touched = mutate(data, spans, kind, rng)
                records, issues, slowest = read_all(mutated)
                tried[kind] += 1
                assert slowest < SECONDS_PER_RECORD, (path.name, kind)
                expected = Counter()
                for j, keys in enumerate(by_member):
                    if j not in touched:
                        expected.update(keys)
                got = record_keys(records)
                missing = expected - got
                assert not missing, (path.name, kind, list(missing)[:3])  # every readable record is still read
                assert all(got[k] <= 1 for k in got if k and kind != "content_length"), (path.name, kind)
                lost = sum((sum(by_member[j].values()) for j in touched), 0) - (
                    sum(got.values()) - sum(expected.values())
                )
                if lost > 0 and kind in ("flip", "cut_member"):
                    assert issues, (path.name, kind)  # a lost record is reported with a reason
    total = sum(tried.values())
    print(f"\nmutated WARC files tried: {total} ({dict(tried)}), crashes 0, hangs 0")
    assert total >= 200


# ---- hostile files, fuzzed: lying lengths, bombs, deep markup, gzip and plain parts --------------------------

FUZZ_KINDS = ("truncate", "flip", "lying_length", "nesting_bomb", "decompression_bomb")
FUZZ_RECORD_LIMIT = 1 << 22  # max_record_bytes of the fuzz reads: a bomb is cut after a few MiB
SMALL_WARCS = [WARC_DIR / name for name in ("warcio/example.warc.gz", "commoncrawl-whirlwind/whirlwind.warc.gz")]
SMALL_WARCS += [WARC_DIR / name for name in ("resiliparse/warcfile.warc.gz", "dolma/sample-0001.warc.gz")]


def fuzz_read(data: bytes, start: int = 0, end: int | None = None, extract: bool = True):
    """Records, read issues and (with ``extract``) each document's skip reason, by record key."""
    extractor = HtmlExtractor()
    records, issues, reasons = [], [], {}
    for item in iter_records(io.BytesIO(data), start, end, max_record_bytes=FUZZ_RECORD_LIMIT):
        if isinstance(item, ReadIssue):
            issues.append(item)
            continue
        records.append(item)
        out = extractor.extract(item, "fuzzed") if extract else None
        if out is not None:
            reasons[record_key(item)] = out[1]
    return records, issues, reasons


def record_key(record) -> str:
    return record.headers.get("warc-record-id", "") + record.type


def fuzz(paths, cases_per_kind: int, seed: int) -> Counter:
    """Mutated copies of ``paths`` (gzip, or with a run of members uncompressed), each read whole and
    extracted: no crash, no hang, every record of an untouched unit read once, a lost record reported, a
    bomb skipped with its reason, and two byte-range shards reading what the whole file holds."""
    rng, tried = random.Random(seed), Counter()
    for path in paths:
        units = gzip_units(path.read_bytes())
        held = [Counter(record_key(r) for r in fuzz_read(u.raw, extract=False)[0]) for u in units]
        for kind in FUZZ_KINDS:
            for _ in range(cases_per_kind):
                form = rng.choice(("gzip", "mixed"))
                data, touched, note = mutate_units(units if form == "gzip" else mixed(units, rng), kind, rng)
                where = (path.name, form, kind, note)
                records, issues, reasons = within(120, fuzz_read, data)
                got = Counter(record_key(r) for r in records)
                expected = sum((held[j] for j in range(len(units)) if j not in touched), Counter())
                assert not expected - got, where  # every record of an untouched unit is read...
                assert all(got[k] == 1 for k in expected if k), where  # ... once
                # records of mutated units, less the records read that no untouched unit holds (a flipped byte in
                # an uncompressed header can change a record's id or type: no checksum tells)
                lost = sum(held[j].total() for j in touched) - (got - expected).total()
                if lost > 0 and kind in ("flip", "lying_length"):  # (a truncation may end at a record boundary)
                    assert issues, where  # a lost record is reported
                if kind == "nesting_bomb":
                    bomb = next(k for k in reasons if "nesting-bomb" in k)
                    assert reasons[bomb] in ("nesting_too_deep", "extract_timeout"), where
                if kind == "decompression_bomb":
                    assert "decompression_limit" in {i.reason for i in issues}, where
                cut = rng.randrange(1, len(data))
                shards = fuzz_read(data, 0, cut, extract=False)[0] + fuzz_read(data, cut, len(data), extract=False)[0]
                assert [(r.offset, record_key(r)) for r in shards] == [(r.offset, record_key(r)) for r in records], (
                    where,
                    cut,
                )
                tried[kind] += 1
    return tried


def test_fuzzed_hostile_warc_files_never_crash_hang_or_lose_a_record_silently():
    tried = fuzz(SMALL_WARCS, cases_per_kind=2, seed=7)
    print(f"\nfuzzed WARC files: {sum(tried.values())} ({dict(tried)})")
    assert sum(tried.values()) == len(SMALL_WARCS) * len(FUZZ_KINDS) * 2


@pytest.mark.slow
def test_a_larger_fuzz_run_over_every_sample_warc():
    tried = fuzz(SAMPLE_WARCS, cases_per_kind=6, seed=2025)
    print(f"\nfuzzed WARC files: {sum(tried.values())} ({dict(tried)})")


# ---- the trainer killed while it writes a checkpoint --------------------------------------------------------


@pytest.mark.slow
def test_a_trainer_killed_while_writing_a_checkpoint_resumes_exactly(tmp_path):
    from tests.test_trainer import losses_by_step
    from tests.test_trainer_processes import SERIAL, write_config

    shards = _shards(tmp_path)
    reference = write_config(tmp_path / "ref.toml", shards, tmp_path / "ref", steps=12)
    train = [f"{BIN}/refinery", "train", reference, "--no-progress"]
    subprocess.run(train, check=True, capture_output=True, env=SERIAL)
    config = write_config(tmp_path / "run.toml", shards, tmp_path / "run", steps=12)
    out = tmp_path / "run"
    caught = 0
    for _ in range(20):  # until the kill lands while a temporary checkpoint file exists
        proc = subprocess.Popen(
            [f"{BIN}/refinery", "train", config, "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=SERIAL,
        )
        while proc.poll() is None:
            if out.exists() and any(n.startswith("checkpoint.pt.tmp-") for n in os.listdir(out)):
                proc.send_signal(signal.SIGKILL)
                caught += 1
                break
        proc.wait()
        if caught or proc.returncode == 0:
            break
    assert caught, "never caught a checkpoint being written"
    if (out / "checkpoint.pt").exists():
        load_checkpoint(str(out / "checkpoint.pt"))  # the previous checkpoint is intact
    subprocess.run([f"{BIN}/refinery", "train", config, "--no-progress"], check=True, capture_output=True, env=SERIAL)
    assert losses_by_step(out / "metrics.jsonl") == losses_by_step(tmp_path / "ref" / "metrics.jsonl")


def _shards(root):
    """Two token shards of real English text (as tests/test_trainer.py's fixture makes them)."""
    from pipeline.stages.tokenize import write_shard
    from tests.helpers import FIXTURES
    from tokenizer.bpe import Tokenizer
    from tokenizer.train import train_bpe

    bpe = FIXTURES / "cs336/bpe"
    vocab, merges = train_bpe(bpe / "corpus.en", 512, ["<|endoftext|>"])
    tokenizer = Tokenizer(vocab, merges, ["<|endoftext|>"])
    corpus = (bpe / "corpus.en").read_text(encoding="utf-8").split("\n\n")
    write_shard(str(root / "shards" / "a"), corpus, tokenizer, "<|endoftext|>")
    return root
