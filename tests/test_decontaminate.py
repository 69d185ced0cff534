"""``decontaminate`` on real text: passages of a Stanford Encyclopedia of Philosophy article and long Tatoeba
sentences as evaluation sets, planted into Common Crawl documents (CCNet) with their case, punctuation and
accents changed; found, reported per evaluation set with the shared passage, or cut out."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup import shingle_hashes
from pipeline.engine.executor import LocalExecutor
from pipeline.runner import run_workflow
from pipeline.stages.decontaminate import eval_index
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES
from tokenizer.errors import ConfigError

SEP = FIXTURES / "cs336/high_quality_wiki_reference.txt"


def sep_items() -> list[dict]:
    """Paragraphs of the article of 40 words or more, as an evaluation set's items."""
    paragraphs = [p.strip() for p in SEP.read_text().split("\n") if len(p.split()) >= 40]
    return [{"id": f"sep-{i}", "text": p} for i, p in enumerate(paragraphs)]


def tatoeba_items() -> list[dict]:
    with open(FIXTURES / "text/tatoeba/tatoeba_long.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [{"id": f"tatoeba-{i}", "text": r["text"]} for i, r in enumerate(rows)]


def ccnet_docs() -> list[dict]:
    docs = []
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(FIXTURES / "text/dolma-ccnet" / name, "rt") as f:
            docs += [{"id": d["id"], "text": d["text"]} for d in map(json.loads, f)]
    return docs


def disguise(passage: str) -> str:
    """The passage as a careless copy has it: upper case, other punctuation, a line break, no accents."""
    words = passage.split()
    words[3] = words[3].upper() + ","
    words[10] = words[10] + "\n"
    plain = unicodedata.normalize("NFD", " ".join(words))
    return "".join(c for c in plain if not unicodedata.combining(c))


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def planted_corpus(tmp_path) -> tuple[list[dict], dict[str, tuple[str, str]]]:
    """CCNet documents; four of them with a passage planted in the middle (doc id -> (set, passage)), one
    with only ten words of a passage (below the n-gram size)."""
    docs = ccnet_docs()
    sep = sep_items()
    galician = next(t for t in tatoeba_items() if "móbiles" in t["text"])
    plants = {
        docs[2]["id"]: ("sep", disguise(" ".join(sep[7]["text"].split()[:40]))),
        docs[5]["id"]: ("sep", sep[7]["text"]),
        docs[11]["id"]: ("sep", disguise(sep[20]["text"])),
        docs[17]["id"]: ("tatoeba", disguise(galician["text"])),
    }
    for doc in docs:
        words = doc["text"].split(" ")
        middle = len(words) // 2
        if doc["id"] in plants:
            doc["text"] = " ".join(words[:middle] + [plants[doc["id"]][1]] + words[middle:])
    docs[8]["text"] += " " + " ".join(sep[3]["text"].split()[5:15])  # ten words: not contamination
    write_jsonl(tmp_path / "corpus.jsonl", docs)
    write_jsonl(tmp_path / "evals/sep/part-0.jsonl", sep[:15])
    pq.write_table(pa.Table.from_pylist(sep[15:]), tmp_path / "evals/sep/part-1.parquet")
    write_jsonl(tmp_path / "evals/tatoeba-long.jsonl", tatoeba_items())
    return docs, plants


WORKFLOW = """
[run]
name = "decont"
output = "runs"
[input]
paths = ["corpus.jsonl"]
[[stages]]
kind = "decontaminate"
action = "{action}"
[stages.eval_sets]
sep = ["evals/sep/"]
tatoeba = ["evals/tatoeba-*.jsonl"]
"""


def run(tmp_path, action: str) -> dict:
    (tmp_path / "wf.toml").write_text(WORKFLOW.format(action=action))
    return run_workflow(load_workflow(str(tmp_path / "wf.toml")), executor=LocalExecutor(progress=False))


def outputs(stats: dict, kind: str) -> dict[str, dict]:
    path = f"{stats['run']['run_dir']}/decontaminate/{kind}"
    return {d["id"]: d for d in pq.read_table(path).to_pylist()}


def test_planted_passages_are_found_and_reported_per_evaluation_set(tmp_path):
    docs, plants = planted_corpus(tmp_path)
    stats = run(tmp_path, "drop")
    stage = stats["stages"][1]
    rejected = outputs(stats, "rejected")
    assert set(rejected) == set(plants)
    assert stage["dropped"] == {"decontaminate.contaminated": 4}
    assert stage["labels"]["contaminated_by"] == {"sep": 3, "tatoeba": 1}
    assert stage["docs_kept"] == len(docs) - 4
    text_of = {d["id"]: d["text"] for d in docs}
    for doc_id, (eval_set, _) in plants.items():
        doc = rejected[doc_id]
        assert doc["contaminated_by"] == eval_set
        shared = ast.literal_eval(doc["detail"].rsplit(": ", 1)[1])  # the first shared passage, as in the document
        assert len(shared.split()) >= 13 and shared in text_of[doc_id]
        assert doc["detail"].startswith(f"{doc['contaminated_ngrams']} 13-grams shared with {eval_set}; first from")
    first, *_, galician = plants
    assert "from sep item sep-7: " in rejected[first]["detail"]
    assert "from tatoeba item tatoeba-" in rejected[galician]["detail"]
    assert stage["histograms"]["contaminated_ngrams"]["n"] == 4


def test_cut_removes_the_shared_passage_and_keeps_the_rest(tmp_path):
    docs, plants = planted_corpus(tmp_path)
    stats = run(tmp_path, "cut")
    kept = outputs(stats, "kept")
    assert set(kept) == {d["id"] for d in docs}
    index = load_workflow(str(tmp_path / "wf.toml")).stages[1].index()
    for doc in docs:
        out = kept[doc["id"]]
        if doc["id"] not in plants:
            assert out["text"] == doc["text"] and out["contaminated_by"] is None
            continue
        before, after = doc["text"].split(plants[doc["id"]][1])
        assert (index.lookup(shingle_hashes(out["text"], 13)) < 0).all()  # nothing shared is left
        assert out["text"].startswith(before.strip()) and out["text"].endswith(after.strip())
        assert len(out["text"]) < len(doc["text"]) - len(plants[doc["id"]][1]) * 0.9
    assert stats["stages"][1]["events"]["docs_cut"] == 4


def test_the_index_holds_the_evaluation_sets_and_nothing_else(tmp_path):
    planted_corpus(tmp_path)
    (tmp_path / "wf.toml").write_text(WORKFLOW.format(action="drop"))
    stage = load_workflow(str(tmp_path / "wf.toml")).stages[1]
    assert [len(stage.files[name]) for name in ("sep", "tatoeba")] == [2, 1]
    index = stage.index()
    expected = {int(h) for item in sep_items() + tatoeba_items() for h in shingle_hashes(item["text"], 13)}
    assert set(index.hashes.tolist()) == expected
    assert index.hashes.nbytes + index.sets.nbytes + index.items.nbytes == 14 * len(expected)
    assert eval_index.cache_info().currsize >= 1 and stage.index() is index  # built once per process
    sep_hashes = {int(h) for item in sep_items() for h in shingle_hashes(item["text"], 13)}
    first_set = dict(zip(index.hashes.tolist(), index.sets.tolist()))
    assert all(first_set[h] == 0 for h in sep_hashes)
    assert np.all(np.diff(index.hashes.astype(np.float64)) >= 0)


@pytest.mark.parametrize(
    "old, new, key, expected",
    [
        ('sep = ["evals/sep/"]', 'sep = ["empty/"]', "stages[0].eval_sets.sep[0]", "holds no input files"),
        ("tatoeba-*", "nothing-*", "stages[0].eval_sets.tatoeba[0]", "no file matches"),
        ('action = "drop"', 'action = "mask"', "stages[0].action", "expected one of 'drop', 'cut'"),
        ('action = "drop"', "ngram_size = 0", "stages[0].ngram_size", "must be >= 1"),
        ("[stages.eval_sets]", "eval_sets = {}\n[unused]", "stages[0].eval_sets", "expected at least one evaluation"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path, old, new, key, expected):
    planted_corpus(tmp_path)
    (tmp_path / "empty").mkdir()
    text = WORKFLOW.format(action="drop").replace(old, new)
    if "[unused]" in text:  # the set names would land in another table: leave them out
        text = text.split("[unused]")[0]
    (tmp_path / "wf.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_workflow(str(tmp_path / "wf.toml"))
    assert err.value.file == str(tmp_path / "wf.toml") and err.value.key == key
    assert expected in err.value.expected


def test_sample_and_report_show_the_evidence(tmp_path, capsys):
    from pipeline.cli import main

    planted_corpus(tmp_path)
    stats = run(tmp_path, "drop")
    run_dir = stats["run"]["run_dir"]
    assert main(["sample", run_dir, "--reason", "decontaminate.contaminated", "-n", "4"]) == 0
    shown = capsys.readouterr().out
    assert shown.count("why: ") == 4 and "13-grams shared with sep; first from sep item sep-7: " in shown
    assert main(["report", run_dir]) == 0
    html = open(f"{run_dir}/report.html", encoding="utf-8").read()
    assert "decontaminate.contaminated" in html and "13-grams shared with " in html
