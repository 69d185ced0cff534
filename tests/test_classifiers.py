"""Model-based filters: a fastText quality classifier trained here on real pages, the offline profanity
classifier, fastText toxicity models by path, C4's bad-words rule, and all of them inside a filter stage."""

from __future__ import annotations

import glob
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from filters.classifiers import QualityClassifier
from filters.language import LanguageFilter
from filters.models import fasttext_labels
from filters.toxicity import C4BadWords, Toxicity
from pipeline.cli import main
from pipeline.reader import read_texts
from pipeline.tools.quality import chunks, train_quality_classifier
from pipeline.workflow import load_workflow
from tests.helpers import FIXTURES, ROOT, WARC_DIR
from tests.test_language import extracted_pages
from tokenizer.errors import ConfigError

# Wikipedia articles against Common Crawl text, as the demo's model: pages no test scores with these models
POSITIVE = [str(ROOT / "data/models/enwiki-sample.jsonl.gz")]
NEGATIVE = [str(FIXTURES / "text/dolma-ccnet")]
WIKI_PAGE = FIXTURES / "cs336/high_quality_wiki_reference.txt"  # CS336's held-out pair: 'wiki' and 'cc'
LOW_QUALITY_PAGE = FIXTURES / "cs336/low_quality_cc.txt"
OFFENSIVE = [
    "You are a fucking idiot and everybody hates your stupid face, you worthless piece of shit.",
    "Shut the fuck up, you dumb bitch.",
    "This asshole is a goddamn moron, what a fucking loser.",
]


def write_workflow(path, inputs: list[str], stages: str) -> str:
    """A workflow file reading ``inputs``: extraction, then the given ``[[stages]]`` tables."""
    paths = ", ".join(f'"{p}"' for p in inputs)
    path.write_text(f'[run]\nname = "t"\n[input]\npaths = [{paths}]\n[[stages]]\nkind = "extract"\n{stages}')
    return str(path)


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory):
    """A quality classifier trained as the demo's is (data/models/PROVENANCE.md), unquantized: Wikipedia articles
    against Common Crawl pages, a fifth of the documents held out."""
    path = str(tmp_path_factory.mktemp("quality") / "quality.bin")
    report = train_quality_classifier(
        POSITIVE, NEGATIVE, path, valid_fraction=0.2, epoch=25, lr=0.5, dim=16, bucket=100_000, threads=1
    )
    return path, report


def test_the_quality_classifier_separates_held_out_pages(quality_model):
    path, report = quality_model
    assert report.valid["hq"] >= 15 and report.valid["lq"] >= 5
    majority = max(report.valid.values()) / sum(report.valid.values())
    assert report.accuracy > majority  # better than always answering the larger class
    assert report.auc >= 0.9 and report.recall >= 0.9, report
    scorer = QualityClassifier(model=path)
    wiki, low = {"text": WIKI_PAGE.read_text()}, {"text": LOW_QUALITY_PAGE.read_text()}
    for doc in (wiki, low):
        scorer.apply(doc, Counter())
    assert wiki["quality_score"] > 0.5 > low["quality_score"]  # CS336's pair, which no model here trains on


def test_quality_train_cli_prints_held_out_scores_and_saves_a_quantized_model(tmp_path, capsys):
    out = tmp_path / "q.ftz"
    args = ["--positive", *POSITIVE, "--negative", *NEGATIVE, "--output", str(out), "--dim", "16"]
    assert main(["quality", "train", *args]) == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "recall" in printed and "ROC AUC" in printed
    assert out.exists() and out.stat().st_size < 5_000_000
    assert (
        QualityClassifier(model=str(out), threshold=0.0).apply({"text": "Debian is free software."}, Counter()) is None
    )


def test_sources_are_read_from_warc_parquet_jsonl_and_text(tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"text": ["first document " * 10, "second " * 20]}), tmp_path / "kept.parquet")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "a jsonl document " * 10}) + "\n")
    (tmp_path / "page.txt").write_text("one document per text file " * 5)
    assert len(list(read_texts(str(tmp_path / "kept.parquet"), min_chars=100))) == 2
    assert len(list(read_texts(str(tmp_path / "docs.jsonl"), min_chars=100))) == 1
    assert len(list(read_texts(str(tmp_path / "page.txt"), min_chars=100))) == 1
    assert len(list(read_texts(str(WARC_DIR / "dolma/sample-0000.warc.gz")))) == 22
    assert chunks("a b c d e f g", 3) == ["a b c", "d e f"]  # a tail under half a chunk is dropped
    with pytest.raises(FileNotFoundError, match="no input files"):
        train_quality_classifier([str(tmp_path / "missing/*")], NEGATIVE, str(tmp_path / "m.bin"))


def test_offline_profanity_flags_offensive_text_and_passes_real_pages():
    toxicity = Toxicity()
    for text in OFFENSIVE:
        doc = {"text": text, "language": "en"}
        assert toxicity.apply(doc, Counter()) == "above_threshold"
        assert doc["toxicity_profanity"] > 0.5 and "most toxic line" in doc["detail"]
    pages = extracted_pages("dolma/sample-0000.warc.gz") + extracted_pages("dolma/sample-0001.warc.gz")
    events = Counter()
    verdicts = [toxicity.apply(doc, events) for doc in pages]
    assert verdicts == [None] * len(pages) and len(pages) == 37
    assert max(doc["toxicity_profanity"] for doc in pages) < 0.5
    # a clean page with one offensive line: line granularity finds it, document granularity dilutes it
    page = {"text": pages[0]["text"] + "\n" + OFFENSIVE[0], "language": "en"}
    assert Toxicity(granularity="line").apply(dict(page), Counter()) == "above_threshold"


def test_english_only_models_skip_other_languages_with_a_count():
    toxicity = Toxicity()
    german = next(
        d for d in extracted_pages("debian-installation-guide/installation-guide-19lang.warc.gz") if "/de/" in d["url"]
    )
    events = Counter()
    assert toxicity.apply(german, events) is None  # no language annotation: lid.176 says 'de'
    assert events == {"skipped_other_language": 1} and "toxicity_profanity" not in german
    assert Toxicity(languages=[]).apply({"text": OFFENSIVE[0]}, Counter()) == "above_threshold"


def test_shouted_english_is_scored_and_confident_other_languages_still_skipped():
    """lid.176 reads an all-caps English insult as Japanese (0.27): it is scored, on case-folded language ID or
    because an earlier language filter was unsure; a German page stays skipped, even in capitals."""
    shouted = OFFENSIVE[0].upper()
    events = Counter()
    assert Toxicity().apply({"text": shouted}, events) == "above_threshold" and not events
    annotated = {"text": shouted}
    LanguageFilter(languages=[]).apply(annotated, Counter())
    assert annotated["language"] != "en" and annotated["language_score"] < 0.5
    assert Toxicity().apply(annotated, events) == "above_threshold" and not events
    german = next(
        d for d in extracted_pages("debian-installation-guide/installation-guide-19lang.warc.gz") if "/de/" in d["url"]
    )
    assert Toxicity().apply({"text": german["text"].upper()}, events) is None
    assert events == {"skipped_other_language": 1}
    with pytest.raises(ConfigError, match="language_threshold: must be between 0 and 1"):
        Toxicity(language_threshold=1.5)
    with pytest.raises(ConfigError, match=r"languages\[0\]: a language code such as 'en', not 'English'"):
        Toxicity(languages=["English"])


def test_a_fasttext_toxicity_model_is_scored_by_its_label(quality_model):
    path, _ = quality_model
    page = {"text": LOW_QUALITY_PAGE.read_text()}
    low = Toxicity(category="spam", model=path, label="lq", threshold=0.5, languages=[])
    assert low.apply(page, Counter()) == "above_threshold" and page["toxicity_spam"] > 0.5
    with pytest.raises(ConfigError, match=r"label: .* has no label 'toxic'; its labels: (hq, lq|lq, hq)"):
        Toxicity(category="x", model=path, label="toxic", languages=[])
    with pytest.raises(ConfigError, match=r"label: .* has no label 'good'"):
        QualityClassifier(model=path, label="good")
    with pytest.raises(ConfigError, match="label: name the toxic label"):
        Toxicity(category="custom", model=path)


def test_a_file_that_is_not_a_fasttext_model_is_refused_when_the_filter_is_built(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("ass\nbutt\n")
    truncated = tmp_path / "truncated.ftz"
    truncated.write_bytes((ROOT / "filters/models/lid.176.ftz").read_bytes()[:200])
    with pytest.raises(ConfigError, match=r"model: .*words.txt is not a fastText model .*refinery quality train"):
        QualityClassifier(model=str(words))
    with pytest.raises(ConfigError, match=r"model: .*truncated.ftz is a truncated fastText model"):
        QualityClassifier(model=str(truncated))
    with pytest.raises(ConfigError, match=r"model: .*words.txt is not a fastText model.*dolma-artifacts"):
        Toxicity(category="nsfw", model=str(words))
    workflow = write_workflow(
        tmp_path / "wf.toml",
        [f"{WARC_DIR}/dolma/*.warc.gz"],
        '[[stages]]\nkind = "filter"\n[[stages.filters]]\nkind = "quality_classifier"\nmodel = "words.txt"\n',
    )
    with pytest.raises(ConfigError, match=r"wf.toml: stages\[1\].filters\[0\].model: .*not a fastText model"):
        load_workflow(workflow)
    assert fasttext_labels(str(ROOT / "filters/models/lid.176.ftz"))[:3] == ["en", "ru", "de"]


def test_missing_models_name_the_path_and_where_to_get_them(tmp_path):
    with pytest.raises(ConfigError, match=r"no such file: /nowhere/nsfw.bin; Dolma's Jigsaw .*dolma-artifacts.org"):
        Toxicity(category="nsfw", model="/nowhere/nsfw.bin")
    with pytest.raises(ConfigError, match=r"no such file: .*q.bin; train one with `refinery quality train"):
        QualityClassifier(model=str(tmp_path / "q.bin"))
    with pytest.raises(ConfigError, match="LDNOOBW"):
        C4BadWords(words=str(tmp_path / "en"))
    workflow = write_workflow(
        tmp_path / "wf.toml",
        [f"{WARC_DIR}/dolma/*.warc.gz"],
        '[[stages]]\nkind = "filter"\n[[stages.filters]]\nkind = "quality_classifier"\nmodel = "models/dclm.bin"\n',
    )
    with pytest.raises(ConfigError, match=r"wf.toml: stages\[1\].filters\[0\].model: no such file: .*models/dclm.bin"):
        load_workflow(workflow)


def test_c4_bad_words_match_whole_words_only(tmp_path):
    words = tmp_path / "en"
    words.write_text("ass\nbutt plug\n")
    rule = C4BadWords(words=str(words))
    doc = {"text": "A class on grass and bass; passing."}
    assert rule.apply(doc, Counter()) is None
    doc = {"text": "Don't be an ASS, please."}
    assert rule.apply(doc, Counter()) == "bad_word" and doc["detail"] == "bad word: ass"
    assert rule.apply({"text": "a butt plug ad"}, Counter()) == "bad_word"


def test_classifiers_in_a_filter_stage_write_annotations_histograms_and_evidence(quality_model, tmp_path):
    from pipeline.inputs import Shard
    from pipeline.rundir import RunDir
    from pipeline.stages.base import ShardContext, process_shard

    path, _ = quality_model
    workflow = write_workflow(
        tmp_path / "wf.toml",
        [f"{WARC_DIR}/dolma/sample-0000.warc.gz"],
        f"""
[[stages]]
kind = "filter"
  [[stages.filters]]
  kind = "language"
  [[stages.filters]]
  kind = "toxicity"
  [[stages.filters]]
  kind = "quality_classifier"
  model = "{path}"
  threshold = 0.6
""",
    )
    stages = load_workflow(workflow).stages
    ctx = ShardContext(
        RunDir(str(tmp_path / "run")), Shard("000000-0000", str(WARC_DIR / "dolma/sample-0000.warc.gz"), 0, None)
    )
    process_shard(ctx, stages, [False, False])
    kept = [r for f in glob.glob(f"{tmp_path}/run/filter/kept/*.parquet") for r in pq.read_table(f).to_pylist()]
    rejected = [r for f in glob.glob(f"{tmp_path}/run/filter/rejected/*.parquet") for r in pq.read_table(f).to_pylist()]
    assert kept and all(r["quality_score"] >= 0.6 and r["toxicity_profanity"] is not None for r in kept)
    assert {r["reason"] for r in rejected} <= {
        "quality_classifier.score_below_threshold",
        "language.not_allowed",
        "language.score_below_threshold",
    }
    stats = json.load(open(glob.glob(f"{tmp_path}/run/filter/stats/*.json")[0]))
    histograms = json.dumps(stats)
    assert "quality_score" in histograms and "toxicity_profanity" in histograms


def test_the_fast_profanity_path_equals_scikit_learns_predict_proba():
    from profanity_check import predict_prob

    from filters.toxicity import profanity_model

    pages = extracted_pages("dolma/sample-0000.warc.gz")
    texts = [p["text"] for p in pages] + [line for p in pages for line in p["text"].splitlines()] + OFFENSIVE
    assert max(abs(profanity_model()(texts) - predict_prob(texts))) < 1e-12


@pytest.mark.usefixtures("ray_session")
def test_top_fraction_keeps_the_best_scored_documents_of_the_whole_corpus(quality_model, tmp_path):
    from pipeline.runner import run_workflow

    path, _ = quality_model
    inputs = [f"{WARC_DIR}/{d}/*.gz" for d in ("dolma", "resiliparse", "debian-installation-guide")]
    workflow = write_workflow(
        tmp_path / "top.toml",
        inputs,
        f"""
[[stages]]
kind = "filter"
name = "score"
  [[stages.filters]]
  kind = "quality_classifier"
  model = "{path}"
  threshold = 0.0
[[stages]]
kind = "top_fraction"
column = "quality_score"
fraction = 0.25
""",
    )
    stats = run_workflow(load_workflow(workflow), output=str(tmp_path), progress=False)
    run_dir = stats["run"]["run_dir"]

    def rows(outcome):
        return [
            r for f in glob.glob(f"{run_dir}/top_fraction/{outcome}/*.parquet") for r in pq.read_table(f).to_pylist()
        ]

    kept, rejected = rows("kept"), rows("rejected")
    scored = len(kept) + len(rejected)
    assert scored > 100 and len(kept) == -(-scored // 4)  # ceil(0.25 x documents): no ties among the scores
    assert min(r["quality_score"] for r in kept) >= max(r["quality_score"] for r in rejected)
    threshold = json.load(open(f"{run_dir}/top_fraction/threshold.json"))
    assert threshold["scored"] == scored and min(r["quality_score"] for r in kept) >= threshold["threshold"]
    assert {r["reason"] for r in rejected} == {"top_fraction.below_top_fraction"}
