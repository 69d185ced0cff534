"""``sentence_dedup`` (C4's three-sentence spans, as datatrove's SentenceDedup): spans planted in Common Crawl
documents are cut after their first occurrence and nowhere else, a document that is mostly a copy is
dropped with the span as evidence, and on the sample pages the distributed stage removes what a plain loop
over the documents in input order removes."""

from __future__ import annotations

import glob
import gzip
import json

import pyarrow.parquet as pq
import pytest

from filters.text import words
from pipeline.engine.executor import LocalExecutor
from pipeline.runner import run_workflow
from pipeline.stages.dedup.sentences import sentence_spans, span_hashes
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES, WARC_DIR


def test_sentences_end_at_terminal_punctuation_and_line_breaks():
    text = 'He said "Stop!" and left.  Then:\n  a list item\nWhy? Because (it works.) Done'
    pieces = [text[a:b] for a, b in sentence_spans(text)]
    assert pieces == ['He said "Stop!"', "and left.", "Then:", "a list item", "Why?", "Because (it works.)", "Done"]
    assert sentence_spans(" \n\n ") == []
    # spans are normalised like datatrove's simplify_text: case, punctuation and numbers do not matter
    a = span_hashes("One. Two in 2019. Three! Four.", 3)
    b = span_hashes("ONE! two, in 1999.\nThree... four?", 3)
    assert [h for _, h in a] == [h for _, h in b] and [i for i, _ in a] == [0, 1]


def ccnet_docs() -> list[dict]:
    docs = []
    for name in ("cc_en_head-0091.jsonl.gz", "cc_en_head-0174.jsonl.gz"):
        with gzip.open(FIXTURES / "text/dolma-ccnet" / name, "rt") as f:
            docs += [{"id": d["id"], "text": d["text"]} for d in map(json.loads, f)]
    return docs


def at_sentence(text: str, k: int) -> int:
    """The offset just after the ``k``-th sentence of ``text``."""
    return sentence_spans(text)[k][1]


WORKFLOW = """
[run]
name = "sentences"
output = "runs"
[input]
paths = {paths}
[[stages]]
kind = "sentence_dedup"
docs_per_partition = {per_partition}
"""


def run(tmp_path, paths: list[str], per_partition: int) -> dict:
    (tmp_path / "wf.toml").write_text(WORKFLOW.format(paths=json.dumps(paths), per_partition=per_partition))
    return run_workflow(load_workflow(str(tmp_path / "wf.toml")), executor=LocalExecutor(progress=False))


def test_a_planted_span_is_cut_after_its_first_occurrence(tmp_path):
    docs = ccnet_docs()
    source = docs[6]["text"]
    spans = sentence_spans(source)
    span = source[spans[4][0] : spans[6][1]]  # three sentences of document 6
    assert len(words(span)) > 20
    originals = {d["id"]: d["text"] for d in docs}
    for target in (11, 16):  # copied into two later documents, between two of their sentences
        text = docs[target]["text"]
        cut = at_sentence(text, 3)
        docs[target]["text"] = text[:cut] + " " + span.upper() + text[cut:]
    copy = docs[2]["text"][: at_sentence(docs[2]["text"], 1)] + " " + span  # mostly a copy: too short after
    docs.append({"id": "mostly-a-copy", "text": copy})
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    stats = run(tmp_path, [str(tmp_path / "docs.jsonl")], per_partition=5)
    run_dir = stats["run"]["run_dir"]
    kept = {d["id"]: d for d in pq.read_table(f"{run_dir}/sentence_dedup/kept").to_pylist()}
    rejected = {d["id"]: d for d in pq.read_table(f"{run_dir}/sentence_dedup/rejected").to_pylist()}
    assert set(rejected) == {"mostly-a-copy"}
    assert rejected["mostly-a-copy"]["reason"] == "sentence_dedup.too_short_after_dedup"
    assert repr(span)[1:-1][:100] in rejected["mostly-a-copy"]["detail"]
    assert kept[docs[6]["id"]]["text"] == source  # the first occurrence stays
    for target in (11, 16):
        assert kept[docs[target]["id"]]["text"] == originals[docs[target]["id"]].strip()  # as datatrove joins
        assert kept[docs[target]["id"]]["sentences_removed"] == 3
    others = [d for d in docs[:-1] if d["id"] not in (docs[11]["id"], docs[16]["id"])]
    # CCNet documents repeat little: whatever else was cut, the plain loop below agrees (tested on pages next)
    assert (
        sum(kept[d["id"]]["sentences_removed"] for d in others) == stats["stages"][1]["events"]["sentences_removed"] - 6
    )


def plain_loop(docs: list[dict], n: int = 3, min_words: int = 50, min_sentences: int = 3) -> list[tuple[int, bool]]:
    """(sentences removed, dropped?) per document in input order, with one set of the spans seen so far."""
    seen: set[int] = set()
    out = []
    for doc in docs:
        later = []
        for i, h in span_hashes(doc["text"], n):
            if h in seen:
                later.append(i)
            seen.add(h)
        spans = sentence_spans(doc["text"])
        removed = {j for i in later for j in range(i, min(i + n, len(spans)))}
        if not removed:
            out.append((0, False))
            continue
        text = doc["text"]
        left = "".join(text[spans[j - 1][1] if j else 0 : spans[j][1]] for j in range(len(spans)) if j not in removed)
        left = left.lstrip()
        short = not left or len(words(left)) < min_words or len(sentence_spans(left)) < min_sentences
        out.append((len(removed), short))
    return out


@pytest.mark.slow
def test_on_the_sample_pages_it_removes_what_a_plain_loop_removes(tmp_path):
    warcs = [f"{WARC_DIR}/{p}" for p in ("debian-docs/*.warc.gz", "dolma/*.warc.gz", "pywb/*.warc.gz")]
    (tmp_path / "pages.toml").write_text(
        f'[run]\nname = "pages"\noutput = "runs"\n[input]\npaths = {json.dumps(warcs)}\n[[stages]]\nkind = "extract"\n'
    )
    pages = run_workflow(load_workflow(str(tmp_path / "pages.toml")), executor=LocalExecutor(progress=False))
    kept_pages = sorted(glob.glob(f"{pages['run']['run_dir']}/extract/kept/*.parquet"))
    stats = run(tmp_path, kept_pages, per_partition=60)
    docs = [d for f in kept_pages for d in pq.read_table(f).to_pylist()]
    run_dir = stats["run"]["run_dir"]
    got = {}
    for kind in ("kept", "rejected"):
        for d in pq.read_table(f"{run_dir}/sentence_dedup/{kind}").to_pylist():
            got[d["id"]] = (d["sentences_removed"], kind == "rejected")
    expected = plain_loop(docs)
    assert [got[d["id"]] for d in docs] == expected
    assert sum(r for r, _ in expected) > 1000 and sum(d for _, d in expected) > 5
