"""Language ID with the shipped lid.176.ftz on labelled real pages and sentences."""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest

from filters.extract import HtmlExtractor
from filters.language import LanguageFilter
from filters.warc import iter_records
from tests.helpers import FIXTURES, WARC_DIR
from tokenizer.errors import ConfigError


def extracted_pages(name: str) -> list[dict]:
    extractor = HtmlExtractor()
    docs = []
    for record in iter_records(io.BytesIO((WARC_DIR / name).read_bytes())):
        result = extractor.extract(record, name)
        if result and result[1] is None:
            docs.append(result[0])
    return docs


def test_accuracy_on_the_debian_multilingual_pages_is_at_least_95_percent():
    labels = {}
    with open(WARC_DIR / "debian-installation-guide/labels.tsv") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            labels[row["target_uri"]] = row["expected_lang"].split("_")[0]  # zh_CN -> zh
    lid = LanguageFilter(languages=[])
    docs = extracted_pages("debian-installation-guide/installation-guide-19lang.warc.gz")
    assert len(docs) == len(labels) == 57
    correct = Counter()
    for doc in docs:
        lid.apply(doc, Counter())
        correct[doc["language"] == labels[doc["url"]]] += 1
    accuracy = correct[True] / len(docs)
    print(f"language-ID accuracy on 57 Debian pages in 19 languages: {accuracy:.3f}")
    assert accuracy >= 0.95


def test_tatoeba_sentences_are_mostly_identified():
    """Long Tatoeba sentences in 84 languages; lid.176 lacks some of them, so the bar is lower."""
    lid = LanguageFilter(languages=[])
    rows = list(csv.DictReader(open(FIXTURES / "text/tatoeba/tatoeba_long.tsv"), delimiter="\t"))
    aliases = {"iw": "he", "jw": "jv"}
    hits = sum(lid.predict(r["text"])[0][0] == aliases.get(r["CLD2-code"], r["CLD2-code"]) for r in rows)
    assert hits / len(rows) >= 0.85


def test_aragonese_page_is_a_low_confidence_spanish_guess_dropped_at_the_default_threshold():
    [doc] = extracted_pages("commoncrawl-whirlwind/whirlwind.warc.gz")
    assert LanguageFilter(languages=["es"]).apply(doc, Counter()) == "score_below_threshold"
    assert doc["language"] == "es" and doc["language_score"] < 0.65
    score = doc["language_score"]
    assert LanguageFilter(languages=["es"], threshold=round(score - 0.01, 4)).apply(doc, Counter()) is None
    assert LanguageFilter(languages=["en"], threshold=0.1).apply(doc, Counter()) == "not_allowed"


@pytest.mark.parametrize("name", ["dolma/sample-0000.warc.gz", "dolma/sample-0001.warc.gz"])
def test_english_pages_pass_the_english_filter(name):
    lid = LanguageFilter()
    docs = extracted_pages(name)
    kept = sum(lid.apply(doc, Counter()) is None for doc in docs)
    assert kept / len(docs) >= 0.9


def test_threshold_at_both_sides():
    doc = {"text": (FIXTURES / "cs336/moby_extracted.txt").read_text()}
    LanguageFilter().apply(doc, Counter())
    score = doc["language_score"]
    assert doc["language"] == "en" and score > 0.9
    assert LanguageFilter(threshold=score - 1e-6).apply(dict(doc), Counter()) is None
    assert LanguageFilter(threshold=min(score + 1e-6, 1.0)).apply(dict(doc), Counter()) == "score_below_threshold"


def test_threshold_out_of_range_is_refused():
    with pytest.raises(ConfigError) as err:
        LanguageFilter(threshold=1.5)
    assert err.value.key == "threshold"


@pytest.mark.parametrize(
    "value, hint",
    [
        ("english", "did you mean 'en'?"),
        ("German", "did you mean 'de'?"),
        ("en_US", "did you mean 'en'?"),
        ("EN", "did you mean 'en'?"),
        ("eng", "did you mean 'en'?"),
        ("frisian", "did you mean 'frr' or 'fy'?"),
        ("klingon", "codes such as 'en'"),
    ],
)
def test_a_language_that_is_not_a_label_of_the_model_is_refused_with_a_hint(value, hint):
    with pytest.raises(ConfigError) as err:
        LanguageFilter(languages=["en", value])
    assert err.value.key == "languages[1]" and hint in str(err.value)
    assert repr(value) in str(err.value)


def test_a_misnamed_language_in_a_workflow_names_the_file_and_key(tmp_path):
    from pipeline.workflow import load_workflow

    workflow = tmp_path / "wf.toml"
    workflow.write_text(
        f'[run]\nname = "t"\n[input]\npaths = ["{WARC_DIR}/dolma/*.warc.gz"]\n[[stages]]\nkind = "extract"\n'
        '[[stages]]\nkind = "filter"\n[[stages.filters]]\nkind = "language"\nlanguages = ["english"]\n'
    )
    with pytest.raises(ConfigError, match=r"wf.toml: stages\[1\].filters\[0\].languages\[0\]: 'english' .*'en'\?"):
        load_workflow(str(workflow))


def test_a_language_model_that_is_not_a_fasttext_file_is_refused(tmp_path):
    notes = tmp_path / "lid.bin"
    notes.write_text("not a model\n" * 10)
    with pytest.raises(ConfigError, match=r"model: .*lid.bin is not a fastText model.*lid.176.bin"):
        LanguageFilter(model=str(notes))
