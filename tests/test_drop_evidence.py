"""The evidence beside every rule drop: the metric's value, how it compares with the threshold, the
threshold and the parameter holding it, recorded by the filter stage as the rejected document's ``detail``
(a filter's own evidence, or an error, is kept)."""

from __future__ import annotations

import re

import pytest

from pipeline.inputs import Shard
from pipeline.rundir import RunDir
from pipeline.stages.base import ShardContext
from pipeline.stages.filter import FilterStage
from tests.test_rules import CASES, PROSE, RELAXED, run, with_threshold

COMPARISON = {"max": ">", "min": "<", "max_incl": "≥", "min_incl": "≤"}


@pytest.mark.parametrize("cls, param, metric, compare, reason, text", CASES, ids=[f"{c[0].kind}-{c[4]}" for c in CASES])
def test_every_rule_drop_names_its_metric_and_threshold(cls, param, metric, compare, reason, text):
    value = run(cls, RELAXED[cls], text)[1][metric]
    step = 1 if isinstance(value, int) else 1e-6
    params = with_threshold(cls, param, {"max": value - step, "min": value + step}.get(compare, value))
    verdict, doc = run(cls, params, text)  # the _incl rules drop at the value itself
    assert verdict == reason
    evidence = cls(**params).evidence(reason, doc)
    name = param[0] if isinstance(param, tuple) else param
    number = r"[\d.,e+-]+"
    assert re.fullmatch(rf"{metric} = {number} {COMPARISON[compare]} {number} \({name}\)", evidence), evidence


def stage(tmp_path, filters: list[dict]):
    built = FilterStage.from_table({"kind": "filter", "filters": filters}, file=str(tmp_path / "wf.toml"), key="s")
    ctx = ShardContext(RunDir(str(tmp_path / "run")), Shard("000000-0000", "input.warc.gz", 0, None))
    return built, ctx


def test_the_filter_stage_records_the_evidence_of_each_drop(tmp_path):
    words = tmp_path / "en"
    words.write_text("harpoon\n")
    filter_stage, ctx = stage(
        tmp_path,
        [
            {"kind": "language", "threshold": 0.65},  # no rule map: its one bounded metric is the evidence
            {"kind": "c4_badwords", "words": str(words)},  # gives its own evidence
            {"kind": "gopher_quality"},
        ],
    )
    docs = [
        {"id": "fr", "text": "Je ne sais pas pourquoi il est parti si tôt ce matin, mais il reviendra demain."},
        {"id": "short", "text": "The whale and the ship sailed into the cold northern sea at dawn."},
        {"id": "harpoon", "text": PROSE + " The harpoon."},
        {"id": "prose", "text": PROSE},
    ]
    kept, rejected, _ = filter_stage.run(ctx, docs)
    details = {d["id"]: (d["reason"], d["detail"]) for d in rejected}
    reason, detail = details["fr"]
    assert reason == "language.not_allowed" and re.fullmatch(r"language = fr, language_score = 0\.\d+", detail)
    assert details["short"] == ("gopher_quality.too_few_words", "gopher_words = 13 < 50 (min_doc_words)")
    assert details["harpoon"] == ("c4_badwords.bad_word", "bad word: harpoon")
    assert [d["id"] for d in kept] == ["prose"] and "detail" not in kept[0]


def test_a_kept_document_carries_no_evidence_into_a_later_drop(tmp_path):
    """Evidence a filter leaves on a document it keeps (or a stale ``detail``) never explains a later drop."""
    filter_stage, ctx = stage(tmp_path, [{"kind": "gopher_quality", "min_doc_words": 3}])
    doc = {"id": "a", "text": "one two three four", "detail": "bad word: stale"}
    _, rejected, _ = filter_stage.run(ctx, [doc])
    assert rejected[0]["detail"] == "gopher_stop_words = 0 < 2 (min_stop_words)"


def test_a_page_dropped_for_a_line_gives_that_line(tmp_path):
    filter_stage, ctx = stage(tmp_path, [{"kind": "c4", "filter_no_terminal_punct": False}])
    text = PROSE + "\nvar whale = {size: 1}; is not prose here."
    _, rejected, _ = filter_stage.run(ctx, [{"id": "js", "text": text}])
    assert rejected[0]["reason"] == "c4.curly_bracket"
    assert rejected[0]["detail"] == "curly bracket in line: var whale = {size: 1}; is not prose here."
