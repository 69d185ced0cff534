"""Multilingual rules on real pages: the Debian installation guide in 19 languages (labelled by lid.176 as the
language filter labels them) and Tatoeba's Thai and Hindi sentences. Word segmentation for Chinese, Japanese
and Thai, per-language thresholds that change decisions for their language only, per-language stop words, and
the errors a workflow file gets for a wrong table."""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter

import pytest

from filters.c4 import C4Quality
from filters.fineweb import FineWebQuality
from filters.gopher import GopherQuality, GopherRepetition
from filters.language import LanguageFilter
from filters.text import words
from tests.helpers import FIXTURES, WARC_DIR
from tests.test_language import extracted_pages
from tests.test_rules import RELAXED
from tokenizer.errors import ConfigError


@pytest.fixture(scope="module")
def pages() -> list[dict]:
    """The guide's 57 pages, with the ``language`` annotation the language filter writes."""
    lid = LanguageFilter(languages=[])
    docs = extracted_pages("debian-installation-guide/installation-guide-19lang.warc.gz")
    for doc in docs:
        lid.apply(doc, Counter())
    return docs


def tatoeba(code: str) -> str:
    with open(FIXTURES / "text/tatoeba/tatoeba_long.tsv", encoding="utf-8") as f:
        return "\n".join(row["text"] for row in csv.DictReader(f, delimiter="\t") if row["CLD2-code"] == code)


def judged(cls, doc: dict, language: str | None, **params) -> dict:
    """``doc`` (a copy) annotated with ``language`` (none for None) after ``cls(**params)`` judged it."""
    doc = {"text": doc["text"]} | ({"language": language} if language else {})
    doc["verdict"] = cls(**params).apply(doc, Counter())
    return doc


@pytest.mark.parametrize("language, word", [("zh", "安装"), ("ja", "インストール")])
def test_segmentation_makes_the_gopher_word_count_of_a_page_sensible(pages, language, word):
    for page in (p for p in pages if p["language"] == language):
        plain = judged(GopherQuality, page, None, **RELAXED[GopherQuality])
        segmented = judged(GopherQuality, page, language, **RELAXED[GopherQuality])
        # without segmentation a "word" is a clause between two punctuation marks
        assert plain["gopher_mean_word_length"] > 5
        assert 1.5 < segmented["gopher_mean_word_length"] < 3
        assert segmented["gopher_words"] > 2 * plain["gopher_words"]
        assert word in words(page["text"], language) or word not in page["text"]
    assert any(word in words(p["text"], language) for p in pages if p["language"] == language)


def test_thai_is_segmented_and_no_word_is_cut_at_a_vowel_or_tone_mark():
    text = tatoeba("th")
    segmented = words(text, "th")
    assert {"มนุษย์", "สิทธิ", "อุปกรณ์", "เหตุผล"} <= set(segmented)
    assert not [w for w in segmented if starts_with_a_mark(w)]
    assert sum(map(starts_with_a_mark, words(text))) > 50  # unknown language: the English regex cuts at every mark
    doc = judged(GopherQuality, {"text": text}, "th", **RELAXED[GopherQuality])
    assert 3 < doc["gopher_mean_word_length"] < 6


def test_combining_marks_stay_in_their_word_for_a_language_written_with_spaces():
    text = tatoeba("hi")
    hindi = words(text, "hi")
    assert {"भारत", "मनुष्यों", "स्वतन्त्रता"} <= set(hindi) and not [w for w in hindi if starts_with_a_mark(w)]
    assert len(hindi) < len(words(text)) / 2  # the English regex cuts every vowel sign off


def starts_with_a_mark(token: str) -> bool:
    return unicodedata.category(token[0]).startswith("M")


@pytest.mark.parametrize(
    "cls, language, table",
    [
        (GopherQuality, "zh", {"min_avg_word_length": 1, "max_avg_word_length": 5}),
        (GopherRepetition, "ja", {"top_2_gram": 0.01}),
        (FineWebQuality, "de", {"short_line_thr": 0.2}),
        (C4Quality, "fr", {"min_num_sentences": 100}),
    ],
)
def test_per_language_thresholds_change_decisions_only_for_their_language(pages, cls, language, table):
    changed = 0
    for page in pages:
        for annotation in (page["language"], None):  # a page without the annotation is judged by the defaults
            default = judged(cls, page, annotation)
            tuned = judged(cls, page, annotation, per_language={language: table})
            if annotation == language:
                changed += default["verdict"] != tuned["verdict"]
            else:
                assert tuned == default, (page["url"], annotation)
    assert changed >= 1


def test_stop_words_of_english_do_not_drop_pages_in_other_languages(pages):
    relaxed = {k: v for k, v in RELAXED[GopherQuality].items() if k != "min_stop_words"}
    others = [p for p in pages if p["language"] != "en"]
    unlabelled = [judged(GopherQuality, p, None, **relaxed)["verdict"] for p in others]
    assert unlabelled.count("too_few_stop_words") > len(others) / 2  # what an English list does to them
    events = Counter()
    for page in others:
        doc = {"text": page["text"], "language": page["language"]}
        assert GopherQuality(**relaxed).apply(doc, events) is None
        assert doc.get("gopher_stop_words") is None
    assert events["stop_words_unknown_for_language"] == len(others)
    for page in (p for p in pages if p["language"] == "en"):  # English pages: the English list, as before
        labelled = judged(GopherQuality, page, "en", **relaxed)
        assert labelled.pop("language") == "en" and labelled == judged(GopherQuality, page, None, **relaxed)
        assert labelled["gopher_stop_words"] >= 2


def test_per_language_stop_words_judge_their_language(pages):
    relaxed = {k: v for k, v in RELAXED[GopherQuality].items() if k != "min_stop_words"}
    german = {"per_language_stop_words": {"de": ["der", "die", "das", "und", "ist", "zu", "den", "mit"]}}
    for page in (p for p in pages if p["language"] == "de"):
        doc = judged(GopherQuality, page, "de", **relaxed, **german)
        assert doc["verdict"] is None and doc["gopher_stop_words"] >= 10
        strict = judged(GopherQuality, page, "de", **relaxed, **german, per_language={"de": {"min_stop_words": 10**4}})
        assert strict["verdict"] == "too_few_stop_words"
        assert judged(GopherQuality, page, None, **relaxed, **german)["verdict"] == "too_few_stop_words"


def test_a_drop_by_a_language_threshold_names_that_threshold(pages):
    [page] = [p for p in pages if p["language"] == "zh" and p["url"].endswith("ch01s02.html")]
    gopher = GopherQuality(per_language={"zh": {"min_doc_words": 5000}})
    doc = {"text": page["text"], "language": "zh"}
    assert gopher.apply(doc, Counter()) == "too_few_words"
    assert (
        gopher.evidence("too_few_words", doc)
        == f"gopher_words = {doc['gopher_words']} < 5,000 (per_language.zh.min_doc_words)"
    )
    repetition = GopherRepetition(per_language={"zh": {"top_2_gram": 0.001}})
    assert repetition.apply(doc, Counter()) == "top_2_gram"
    assert re.fullmatch(
        r"rep_top_2_gram_char_frac = [\d.]+ > 0\.001 \(per_language\.zh\.top_2_gram\)",
        repetition.evidence("top_2_gram", doc),
    )
    unlabelled = {"text": page["text"]}  # no annotation: the default thresholds
    assert gopher.apply(unlabelled, Counter()) != "too_few_words" and unlabelled["gopher_words"] >= 50


def test_chinese_lines_ending_in_a_full_stop_are_punctuated_lines(pages):
    for page in (p for p in pages if p["language"] == "zh"):
        labelled = judged(FineWebQuality, page, "zh", **RELAXED[FineWebQuality])
        unlabelled = judged(FineWebQuality, page, None, **RELAXED[FineWebQuality])
        ended = sum(line.endswith("。") for line in page["text"].split("\n"))
        assert ended and labelled["fineweb_line_punct_ratio"] > unlabelled["fineweb_line_punct_ratio"]
        c4 = judged(C4Quality, page, "zh")
        assert c4["c4_sentences"] >= ended and judged(C4Quality, page, None).get("c4_sentences", 0) < ended


def workflow(tmp_path, filter_toml: str) -> str:
    path = tmp_path / "wf.toml"
    path.write_text(
        f'[run]\nname = "t"\n[input]\npaths = ["{WARC_DIR}/dolma/*.warc.gz"]\n[[stages]]\nkind = "extract"\n'
        f'[[stages]]\nkind = "filter"\n[[stages.filters]]\nkind = "language"\nlanguages = []\n'
        f"[[stages.filters]]\n{filter_toml}"
    )
    return str(path)


@pytest.mark.parametrize(
    "kind, table, setting, key, message",
    [
        ("gopher_quality", "per_language.chinese", "min_doc_words = 20", "per_language.chinese", "did you mean 'zh'"),
        ("fineweb", "per_language.zh", "line_punct_thr = 2", "per_language.zh.line_punct_thr", "between 0 and 1"),
        ("gopher_quality", "per_language.zh", "min_doc_words = 20.5", "per_language.zh.min_doc_words", "whole number"),
        ("c4", "per_language.zh", "lines = 2", "per_language.zh.lines", "one of: max_word_length, min_num_sentences"),
        ("gopher_repetition", "per_language.ja", "top_7_gram = 0.1", "per_language.ja.top_7_gram", "top_2_gram"),
        ("gopher_quality", "per_language.zh", 'stop_words = ["的"]', "per_language.zh.stop_words", "a number"),
        ("gopher_quality", "per_language_stop_words", 'EN = ["the"]', "per_language_stop_words.EN", "mean 'en'"),
    ],
)
def test_a_wrong_language_table_names_the_file_and_key(tmp_path, kind, table, setting, key, message):
    from pipeline.workflow import load_workflow

    path = workflow(tmp_path, f'kind = "{kind}"\n[stages.filters.{table}]\n{setting}\n')
    with pytest.raises(ConfigError) as err:
        load_workflow(path)
    assert (err.value.file, err.value.key) == (path, f"stages[1].filters[1].{key}") and message in str(err.value)


def test_a_language_table_in_a_workflow_reaches_the_filter(tmp_path):
    from pipeline.workflow import load_workflow

    toml = 'kind = "gopher_repetition"\n[stages.filters.per_language.zh]\ndup_line_frac = 0.25\ntop_2_gram = 0.3\n'
    stage = load_workflow(workflow(tmp_path, toml)).stages[1]
    zh = stage.steps[1].filter.for_document({"language": "zh"})
    assert zh.dup_line_frac == 0.25 and zh.top_n_grams == [(2, 0.3), (3, 0.18), (4, 0.16)]
    assert stage.steps[1].filter.for_document({"language": "ja"}).dup_line_frac == 0.3
