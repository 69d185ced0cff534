"""Whole runs of workflows/demo.toml on Ray: outputs agree with the stats, resumption and sharding change
nothing, bad input files are counted, and the stats / sample commands read the run back."""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import random
import shutil

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.runner import run_workflow
from pipeline.schema import ByteSize
from pipeline.workflow import load_workflow
from tests.helpers import ROOT, WARC_DIR, document_stages, response, write_warc
from tokenizer.errors import ConfigError

DEMO = str(ROOT / "workflows" / "demo.toml")
pytestmark = pytest.mark.usefixtures("ray_session")


def run(tmp_path, workflow=None, **kw) -> tuple[dict, str]:
    workflow = workflow or load_workflow(DEMO)
    stats = run_workflow(workflow, output=str(tmp_path), progress=False, **kw)
    return stats, stats["run"]["run_dir"]


def snapshot(run_dir: str) -> dict:
    """Everything a run produced, minus timings: documents per stage/outcome/shard and the merged stats."""
    files = {}
    for path in sorted(glob.glob(f"{run_dir}/*/*/*.parquet")):
        rows = pq.read_table(path).to_pylist()
        files[os.path.relpath(path, run_dir)] = [
            (r["id"], hashlib.sha1((r["text"] or "").encode()).hexdigest(), r.get("reason")) for r in rows
        ]
    stats = json.load(open(f"{run_dir}/stats.json"))
    return {"files": files, "stats": strip_timings(stats)}


def strip_timings(stats: dict) -> dict:
    stats = copy.deepcopy(stats)
    for key in ("wall_s", "invocations", "invocation_wall_s"):
        stats["run"].pop(key, None)
    for stage in stats["stages"]:
        stage.pop("elapsed_s", None)
        stage.pop("timing", None)
    return stats


def rows(folder: str) -> int:
    """Documents in a stage's kept or rejected folder (a shard with none has no file)."""
    return sum(pq.read_metadata(path).num_rows for path in glob.glob(f"{folder}/*.parquet"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    stats, run_dir = run(tmp)
    return stats, run_dir, snapshot(run_dir)


def test_outputs_agree_with_stats(reference):
    stats, run_dir, snap = reference
    extract, quality = stats["stages"][:2]
    assert stats["run"]["complete"] and stats["run"]["inputs"] == 10 and stats["run"]["shards"] > 9
    for stage in stats["stages"]:
        assert stage["docs_in"] == stage["docs_kept"] + sum(stage["dropped"].values())
        if stage["kind"] == "tokenize":
            continue  # writes token shards, not documents (test_token_shards_decode_to_the_documents)
        kept, rejected = (rows(f"{run_dir}/{stage['stage']}/{outcome}") for outcome in ("kept", "rejected"))
        assert (kept, rejected) == (stage["docs_kept"], stage["docs_in"] - stage["docs_kept"])
    assert quality["docs_in"] == extract["docs_kept"]
    # the sample's known contents (see data/warc/PROVENANCE.md)
    assert extract["dropped"] == {"extract.not_html": 28, "extract.redirect": 4, "extract.revisit": 124}
    assert extract["records"]["response"] == 189 + 420 and extract["read_issues"] == {}
    assert sum(quality["labels"]["language"].values()) == quality["steps"][0]["docs_in"] == quality["docs_in"]
    steps = [s["name"] for s in quality["steps"]]
    expected = ["language", "gopher_repetition", "gopher_quality", "c4", "fineweb", "quality_classifier"]
    assert steps == [*expected, "toxicity", "pii"]
    assert quality["histograms"]["language_score"]["n"] == quality["docs_in"]
    names = [s["stage"] for s in stats["stages"]]
    assert names == ["extract", "quality", "exact_dedup", "minhash_dedup", "line_dedup", "tokenize"]
    for before, after in zip(stats["stages"], stats["stages"][1:]):
        assert after["docs_in"] == before["docs_kept"]
    # the allenai.org page three times, and 6 handbook sections whose "translations" are still the English text
    assert stats["stages"][2]["dropped"] == {"exact_dedup.duplicate": 8}


def test_every_document_is_accounted_for_exactly_once(reference):
    _, run_dir, _ = reference
    ids = {}
    for stage in ("extract", "quality"):
        for outcome in ("kept", "rejected"):
            ids[stage, outcome] = pq.read_table(f"{run_dir}/{stage}/{outcome}", columns=["id"]).column("id").to_pylist()
    for stage in ("extract", "quality"):
        both = ids[stage, "kept"] + ids[stage, "rejected"]
        assert len(both) == len(set(both))
    assert sorted(ids["quality", "kept"] + ids["quality", "rejected"]) == sorted(ids["extract", "kept"])


def test_outputs_open_with_datasets(reference):
    import datasets

    stats, run_dir, _ = reference
    ds = datasets.load_dataset("parquet", data_files=f"{run_dir}/quality/kept/*.parquet", split="train")
    assert len(ds) == stats["stages"][1]["docs_kept"] > 0
    assert set(ds.column_names) >= {"id", "url", "text", "language", "language_score", "pii_emails"}
    assert all(lang == "en" for lang in ds["language"])
    assert all("@allenai.org" not in text for text in ds["text"])


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, reference):
    _, ref_dir, ref_snap = reference
    _, run_dir = run(tmp_path)
    # interrupt it after the fact: shards in every state a killed run can leave behind
    rng = random.Random(3)
    markers = sorted(glob.glob(f"{run_dir}/*/stats/*.json"))
    for path in rng.sample(markers, len(markers) // 2):
        os.remove(path)  # outputs written, marker not yet: the shard must be redone
    for path in rng.sample(sorted(glob.glob(f"{run_dir}/quality/kept/*.parquet")), 3):
        shard = os.path.basename(path)[: -len(".parquet")]
        if os.path.exists(f"{run_dir}/quality/stats/{shard}.json"):
            os.remove(f"{run_dir}/quality/stats/{shard}.json")
        with open(path, "wb") as f:
            f.write(b"PAR1 half-written")  # never happens with atomic renames, but must not matter either
        with open(path + ".tmp-0123456789ab", "wb") as f:
            f.write(b"leftover temporary file")
    os.remove(f"{run_dir}/stats.json")
    stats, _ = run(tmp_path)
    assert stats["run"]["complete"]
    assert snapshot(run_dir) == {
        **ref_snap,
        "stats": {**ref_snap["stats"], "run": {**ref_snap["stats"]["run"], "run_dir": run_dir}},
    }


def test_a_lost_input_of_a_stage_is_recomputed(tmp_path, reference):
    """The extract stage of a shard is marked done but its kept file is gone: the rerun redoes it."""
    _, _, ref_snap = reference
    _, run_dir = run(tmp_path)
    os.remove(f"{run_dir}/extract/kept/000003-0000.parquet")
    os.remove(f"{run_dir}/quality/stats/000003-0000.json")
    stats, _ = run(tmp_path)
    assert stats["run"]["complete"]
    assert snapshot(run_dir)["files"] == ref_snap["files"]


def test_the_result_does_not_depend_on_how_files_are_split(tmp_path, reference):
    _, _, ref_snap = reference
    workflow = load_workflow(DEMO)
    workflow.input.split_bytes = ByteSize(64 << 20)  # the ten files, 5.6 MB in all, read as one shard
    stats, run_dir = run(tmp_path, workflow)
    assert stats["run"]["shards"] == 1
    snap = snapshot(run_dir)

    def documents(s):
        return {
            (path.split("/")[0], path.split("/")[1]): sorted(
                row
                for rows in [v for p, v in s["files"].items() if p.split("/")[:2] == path.split("/")[:2]]
                for row in rows
            )
            for path in s["files"]
        }

    assert documents(snap) == documents(ref_snap)
    for mine, ref in zip(snap["stats"]["stages"], ref_snap["stats"]["stages"]):
        for key in ("docs_in", "docs_kept", "bytes_in", "bytes_kept", "dropped", "steps", "labels", "records"):
            assert mine[key] == ref[key], key
        assert {k: h["counts"] for k, h in mine["histograms"].items()} == {
            k: h["counts"] for k, h in ref["histograms"].items()
        }


def test_rerunning_a_changed_workflow_is_refused_unless_restarted(tmp_path):
    run(tmp_path)
    workflow = load_workflow(DEMO)
    workflow.stages[1].steps[0].filter.threshold = 0.9
    with pytest.raises(ConfigError, match="differs from the run"):
        run(tmp_path, workflow)
    stats, _ = run(tmp_path, workflow, restart=True)
    assert stats["stages"][1]["steps"][0]["dropped"]["language.score_below_threshold"] > 3


def test_bad_input_files_are_counted_and_the_rest_processed(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    good = (WARC_DIR / "dolma/sample-0001.warc.gz").read_bytes()
    damaged = bytearray(good)
    for i in range(60_000, 60_040):
        damaged[i] ^= 0xFF
    (inputs / "a-good.warc.gz").write_bytes(good)
    (inputs / "b-damaged.warc.gz").write_bytes(bytes(damaged))
    (inputs / "c-empty.warc.gz").write_bytes(b"")
    (inputs / "d-html.warc.gz").write_bytes(b"<html>this is not a WARC file</html>")
    (inputs / "e-truncated.warc.gz").write_bytes(good[:100_000])
    write_warc(
        inputs / "f-big.warc.gz",
        [
            response("http://big.example/", b"<p>" + b"x" * (10 << 20) + b"</p>"),
            response("http://small.example/", b"<html><p>fine</p></html>"),
        ],
    )
    workflow_file = tmp_path / "bad.toml"
    workflow_file.write_text(
        document_stages(open(DEMO).read())
        .replace('"../data/warc/*/*.warc.gz", "../data/warc/*/*.warc.wet.gz"', f'"{inputs}/*.warc.gz"')
        .replace('name = "demo"', 'name = "bad"')
    )
    stats, _ = run(tmp_path, load_workflow(str(workflow_file)))
    extract = stats["stages"][0]
    assert stats["run"]["complete"]
    assert extract["read_issues"].keys() == {"corrupt_gzip_member", "empty_file", "not_warc", "truncated_gzip_member"}
    assert extract["dropped"]["extract.payload_too_large"] == 1
    sources = {s["source"].rsplit("/", 1)[-1] for s in extract["issue_samples"]}
    assert sources == {"b-damaged.warc.gz", "c-empty.warc.gz", "d-html.warc.gz", "e-truncated.warc.gz"}
    # the damaged copy loses only the record in its corrupt member
    good_docs = 15
    assert extract["docs_kept"] >= good_docs + (good_docs - 1) + 1


def test_stats_and_sample_commands(reference, capsys):
    _, run_dir, _ = reference
    assert main(["stats", run_dir]) == 0
    out = capsys.readouterr().out
    assert "extract.revisit" in out and "language.not_allowed" in out and "kept" in out
    assert main(["stats", run_dir, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stages"][0]["dropped"]["extract.redirect"] == 4
    assert main(["sample", run_dir, "--reason", "extract.redirect", "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("--- ") == 2 and "extract.redirect" in out and "iana.org" in out
    assert main(["sample", run_dir, "--reason", "no.such_reason"]) == 2
    assert "reasons in this run: " in capsys.readouterr().err


def test_stats_of_an_unfinished_run_cover_the_shards_done(tmp_path, capsys):
    _, run_dir = run(tmp_path)
    os.remove(f"{run_dir}/stats.json")
    for path in sorted(glob.glob(f"{run_dir}/quality/stats/*.json"))[:2]:
        os.remove(path)
    assert main(["stats", run_dir]) == 0
    assert "INCOMPLETE" in capsys.readouterr().out
    shutil.rmtree(run_dir)


def test_fsspec_urls_and_uncompressed_warc(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    import gzip

    (inputs / "example.warc").write_bytes(gzip.decompress((WARC_DIR / "warcio/example.warc.gz").read_bytes()))
    shutil.copy(WARC_DIR / "commoncrawl-whirlwind/whirlwind.warc.wet.gz", inputs)
    workflow_file = tmp_path / "urls.toml"
    workflow_file.write_text(
        document_stages(open(DEMO).read())
        .split('[[stages]]\nkind = "tokenize"')[0]
        .replace('"../data/warc/*/*.warc.gz", "../data/warc/*/*.warc.wet.gz"', f'"file://{inputs}/*.warc*"')
        .replace('output = "../runs"', f'output = "file://{tmp_path}/out"')
        .replace('name = "demo"', 'name = "urls"')
    )
    workflow = load_workflow(str(workflow_file))
    assert [f.path for f in workflow.input_files] == [
        f"file://{inputs}/example.warc",
        f"file://{inputs}/whirlwind.warc.wet.gz",
    ]
    stats = run_workflow(workflow, progress=False)
    assert stats["run"]["run_dir"] == f"file://{tmp_path}/out/urls"
    extract = stats["stages"][0]
    assert extract["docs_kept"] == 2 and extract["dropped"] == {"extract.revisit": 1}
    assert os.path.exists(f"{tmp_path}/out/urls/stats.json")


def test_skipped_records_are_logged_with_file_and_offset(tmp_path, caplog):
    from pipeline.inputs import Shard
    from pipeline.rundir import RunDir
    from pipeline.stages.base import ShardContext, process_shard

    bad = tmp_path / "bad.warc.gz"
    data = bytearray((WARC_DIR / "dolma/sample-0001.warc.gz").read_bytes())
    for i in range(60_000, 60_040):
        data[i] ^= 0xFF
    write_warc(tmp_path / "png.warc.gz", [response("http://png.example/", b"\x89PNG\r\n\x1a\n" + bytes(3000))])
    bad.write_bytes(bytes(data) + (tmp_path / "png.warc.gz").read_bytes())
    workflow = load_workflow(DEMO)
    ctx = ShardContext(RunDir(str(tmp_path / "run")), Shard("000000-0000", str(bad), 0, None))
    with caplog.at_level("WARNING", logger="refinery"):
        summary = process_shard(ctx, workflow.stages[:2], [False, False])
    assert summary["extract"][1] == 14  # 15 pages, one in the corrupt member
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"{bad} @") and "corrupt_gzip_member" in m for m in messages)
    assert any(f"{bad} @" in m and "http://png.example/" in m and "binary_payload" in m for m in messages)


def test_token_shards_decode_to_the_documents(reference):
    from tokenizer.bpe import Tokenizer
    from tokenizer.shards import ShardReader, verify_shard

    stats, run_dir, _ = reference
    tokenizer = Tokenizer.load(f"{run_dir}/tokenize/tokenizer")
    assert len(tokenizer) == 2000
    total = 0
    for path in sorted(glob.glob(f"{run_dir}/line_dedup/kept/*.parquet")):
        shard_id = os.path.basename(path)[: -len(".parquet")]
        texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
        prefix = f"{run_dir}/tokenize/shards/{shard_id}"
        assert verify_shard(prefix, tokenizer.hash) == []
        shard = ShardReader(prefix)
        assert [tokenizer.decode(shard.document(i).tolist()) for i in range(len(shard))] == texts
        total += shard.header["tokens"]
    assert total == stats["stages"][-1]["events"]["tokens"] > 10_000


def test_a_later_stage_reruns_on_another_runs_documents(tmp_path, reference):
    """Dedup rerun from the demo's filtered Parquet documents (no extraction) gives the demo's dedup result."""
    _, ref_dir, ref_snap = reference
    workflow = tmp_path / "rededup.toml"
    stages = "".join(f'[[stages]]\nkind = "{kind}"\n' for kind in ("exact_dedup", "minhash_dedup", "line_dedup"))
    workflow.write_text(f'[run]\nname = "again"\n[input]\npaths = ["{ref_dir}/quality/kept/*.parquet"]\n{stages}')
    stats, run_dir = run(tmp_path, load_workflow(str(workflow)))
    assert [s["stage"] for s in stats["stages"]] == ["input", "exact_dedup", "minhash_dedup", "line_dedup"]
    again = snapshot(run_dir)["files"]
    for stage in ("exact_dedup", "minhash_dedup", "line_dedup"):
        for outcome in ("kept", "rejected"):
            mine = sorted(row for path, rows in again.items() if path.startswith(f"{stage}/{outcome}/") for row in rows)
            theirs = sorted(
                r for p, rows in ref_snap["files"].items() if p.startswith(f"{stage}/{outcome}/") for r in rows
            )
            assert mine == theirs, (stage, outcome)
    with pytest.raises(ConfigError, match="need no 'extract'"):
        workflow.write_text(workflow.read_text().replace('kind = "exact_dedup"', 'kind = "extract"', 1))
        load_workflow(str(workflow))
