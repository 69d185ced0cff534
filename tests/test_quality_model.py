"""The demo's shipped quality model (data/models/PROVENANCE.md): trained on no page that a test or the demo
scores, and judged on pages it never saw."""

from __future__ import annotations

import json
import re

from filters.classifiers import fasttext_line
from filters.extract import HtmlExtractor
from filters.models import load_fasttext
from filters.warc import iter_records
from pipeline.cli import main
from pipeline.reader import read_texts
from pipeline.tools.quality import evaluate_quality_classifier, held_out, source_files
from tests.helpers import FIXTURES, ROOT, SAMPLE_WARCS

MODEL = ROOT / "data/models/quality-enwiki-vs-cc.ftz"
TRAINING_SOURCES = {"hq": ROOT / "data/models/enwiki-sample.jsonl.gz", "lq": FIXTURES / "text/dolma-ccnet"}
VALID_FRACTION = 0.2  # as in the training command of data/models/PROVENANCE.md
CS336_PAIR = {"hq": FIXTURES / "cs336/high_quality_wiki_reference.txt", "lq": FIXTURES / "cs336/low_quality_cc.txt"}


def training_lines(label: str) -> list[str]:
    """The documents of one class's training source, one line each, as `refinery quality train` reads them."""
    return [
        fasttext_line(text) for path in source_files(str(TRAINING_SOURCES[label])) for text in read_texts(path, 100)
    ]


def scored_pages() -> dict[str, str]:
    """Every page the tests and the demo score with a quality model: the sample WARCs' pages (the demo reads all
    of data/warc) and CS336's reference pair."""
    extractor = HtmlExtractor(main_content=False)  # all visible text: more words than any stage scores
    pages = {name: path.read_text() for name, path in CS336_PAIR.items()}
    for path in SAMPLE_WARCS:
        with open(path, "rb") as f:
            for record in iter_records(f):
                result = extractor.extract(record, str(path))
                if result and result[1] is None:
                    pages[result[0]["url"]] = result[0]["text"]
    return pages


def test_the_shipped_model_learned_no_word_that_only_scored_pages_contain():
    """A supervised fastText model's dictionary holds the words of its training text; a word of a scored page
    that the declared training sources lack would mean the model was trained on that page."""
    trained = {word for label in TRAINING_SOURCES for line in training_lines(label) for word in line.split(" ")}
    vocabulary = set(load_fasttext(str(MODEL)).get_words())
    pages = scored_pages()
    assert len(pages) > 500
    leaked = {
        url: sorted((set(fasttext_line(text).split(" ")) & vocabulary) - trained)[:5] for url, text in pages.items()
    }
    assert {url: words for url, words in leaked.items() if words} == {}


def test_the_shipped_model_is_judged_on_documents_it_never_saw(tmp_path, capsys):
    """The training command's held-out fifth (a hash of the text, so never trained on) and CS336's pair."""
    for label in TRAINING_SOURCES:
        lines = [line for line in training_lines(label) if held_out(line, VALID_FRACTION)]
        with open(tmp_path / f"{label}.jsonl", "w") as f:
            f.writelines(json.dumps({"text": line}) + "\n" for line in lines)
    held = evaluate_quality_classifier(str(MODEL), [str(tmp_path / "hq.jsonl")], [str(tmp_path / "lq.jsonl")])
    assert (held.valid["hq"], held.valid["lq"]) == (22, 7)
    command = ["quality", "eval", str(MODEL), "--positive", str(tmp_path / "hq.jsonl")]
    assert main([*command, "--negative", str(tmp_path / "lq.jsonl")]) == 0
    assert f"ROC AUC {held.auc:.3f}" in capsys.readouterr().out
    assert held.auc >= 0.95 and held.recall == 1.0, held.render()
    provenance = (ROOT / "data/models/PROVENANCE.md").read_text()
    assert f"ROC AUC {held.auc:.3f}" in provenance and f"precision {held.precision:.3f}" in provenance
    model = load_fasttext(str(MODEL))
    wiki, low = (model.predict(fasttext_line(CS336_PAIR[label].read_text()), k=-1) for label in ("hq", "lq"))
    score = {
        name: dict(zip(labels, probs))["__label__hq"] for name, (labels, probs) in zip(("wiki", "low"), (wiki, low))
    }
    assert score["wiki"] > 0.9 and score["wiki"] > score["low"] + 0.3, score
    assert re.search(rf"CS336 .*{score['wiki']:.2f}.*{score['low']:.2f}", provenance, re.S)
