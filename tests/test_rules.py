"""Every Gopher, C4 and FineWeb rule at both sides of its threshold.

For each rule: a text where its metric is non-trivial, a filter with every other rule relaxed, then the
threshold set exactly at the document's own metric value (the document is on the keeping side, or on the
dropping side for rules that compare with <= or >=) and one step past it (the other side).
"""

from __future__ import annotations

from collections import Counter

import pytest

from filters.c4 import C4Quality
from filters.fineweb import FineWebQuality
from filters.gopher import GopherQuality, GopherRepetition
from tests.helpers import FIXTURES
from tokenizer.errors import ConfigError

PROSE = (FIXTURES / "cs336/moby_extracted.txt").read_text().split("\n\n")[1]
WIKI = (FIXTURES / "cs336/high_quality_wiki_reference.txt").read_text()[:6000]
SYMBOLS = PROSE + "\nSee #whales and #ships for more, or #sea."
ELLIPSES = PROSE + "\nAnd then... the sea... and more…\nIt went on and on...\nThe end"
BULLETS = "Things to bring:\n• a harpoon for the whale\n- a rope to the ship\n• the old forge\n" + PROSE
NUMBERS = PROSE + "\n" + " ".join(str(i) for i in range(60))
REPEATED = (
    "\n\n".join(
        [
            PROSE,
            "Call me Ishmael.",
            WIKI[:800],
            "Call me Ishmael.",
            "The end of the tale.",
            PROSE[:300],
            "Call me Ishmael.",
        ]
    )
    + "\nfoo bar baz\nfoo bar baz\n"
    + "the whale " * 30
)

RELAXED = {
    GopherQuality: dict(
        min_doc_words=0,
        max_doc_words=10**9,
        min_avg_word_length=0,
        max_avg_word_length=1000,
        max_symbol_word_ratio=1,
        max_bullet_lines_ratio=1,
        max_ellipsis_lines_ratio=1,
        min_alpha_words_ratio=0,
        min_stop_words=0,
    ),
    GopherRepetition: dict(
        dup_para_frac=1,
        dup_para_char_frac=1,
        dup_line_frac=1,
        dup_line_char_frac=1,
        top_n_grams=[(2, 1e9), (3, 1e9), (4, 1e9)],
        dup_n_grams=[(n, 1e9) for n in range(5, 11)],
    ),
    FineWebQuality: dict(line_punct_thr=0, short_line_thr=1, char_duplicates_ratio=1, new_line_ratio=100),
    C4Quality: dict(
        min_num_sentences=0, filter_no_terminal_punct=False, filter_lorem_ipsum=False, filter_curly_bracket=False
    ),
}

# (filter, parameter, metric, how the rule compares, reason, text)
#   max: drop if metric > threshold     min: drop if metric < threshold
#   max_incl: drop if metric >= threshold   min_incl: drop if metric <= threshold
CASES = [
    (GopherQuality, "min_doc_words", "gopher_words", "min", "too_few_words", PROSE),
    (GopherQuality, "max_doc_words", "gopher_words", "max", "too_many_words", PROSE),
    (GopherQuality, "min_avg_word_length", "gopher_mean_word_length", "min", "mean_word_length_below_min", PROSE),
    (GopherQuality, "max_avg_word_length", "gopher_mean_word_length", "max", "mean_word_length_above_max", PROSE),
    (GopherQuality, "max_symbol_word_ratio", "gopher_hash_ratio", "max", "hash_ratio_above_max", SYMBOLS),
    (GopherQuality, "max_symbol_word_ratio", "gopher_ellipsis_ratio", "max", "ellipsis_ratio_above_max", ELLIPSES),
    (GopherQuality, "max_bullet_lines_ratio", "gopher_bullet_lines_ratio", "max", "bullet_lines_above_max", BULLETS),
    (
        GopherQuality,
        "max_ellipsis_lines_ratio",
        "gopher_ellipsis_lines_ratio",
        "max",
        "ellipsis_lines_above_max",
        ELLIPSES,
    ),
    (GopherQuality, "min_alpha_words_ratio", "gopher_alpha_words_ratio", "min", "alpha_words_below_min", NUMBERS),
    (GopherQuality, "min_stop_words", "gopher_stop_words", "min", "too_few_stop_words", PROSE),
    (GopherRepetition, "dup_para_frac", "rep_dup_para_frac", "max", "dup_para_frac", REPEATED),
    (GopherRepetition, "dup_para_char_frac", "rep_dup_para_char_frac", "max", "dup_para_char_frac", REPEATED),
    (GopherRepetition, "dup_line_frac", "rep_dup_line_frac", "max", "dup_line_frac", REPEATED),
    (GopherRepetition, "dup_line_char_frac", "rep_dup_line_char_frac", "max", "dup_line_char_frac", REPEATED),
    *[
        (GopherRepetition, ("top_n_grams", n), f"rep_top_{n}_gram_char_frac", "max", f"top_{n}_gram", REPEATED)
        for n in (2, 3, 4)
    ],
    *[
        (GopherRepetition, ("dup_n_grams", n), f"rep_dup_{n}_gram_char_frac", "max", f"dup_{n}_gram", REPEATED)
        for n in range(5, 11)
    ],
    (FineWebQuality, "line_punct_thr", "fineweb_line_punct_ratio", "min_incl", "line_punct_ratio", ELLIPSES),
    (FineWebQuality, "short_line_thr", "fineweb_short_line_ratio", "max_incl", "short_line_ratio", BULLETS),
    (FineWebQuality, "char_duplicates_ratio", "fineweb_char_dup_ratio", "max_incl", "char_dup_ratio", REPEATED),
    (FineWebQuality, "new_line_ratio", "fineweb_newline_word_ratio", "max", "list_ratio", BULLETS),
    (C4Quality, "min_num_sentences", "c4_sentences", "min", "too_few_sentences", WIKI),
]


def run(cls, params, text):
    doc = {"text": text}
    return cls(**params).apply(doc, Counter()), doc


def with_threshold(cls, param, value):
    params = dict(RELAXED[cls])
    if isinstance(param, tuple):  # one n-gram size of a list of (n, fraction) pairs
        name, n = param
        params[name] = [(m, value if m == n else frac) for m, frac in params[name]]
    else:
        params[param] = value
    return params


@pytest.mark.parametrize("cls, param, metric, compare, reason, text", CASES, ids=[f"{c[0].kind}-{c[4]}" for c in CASES])
def test_rule_at_both_sides_of_its_threshold(cls, param, metric, compare, reason, text):
    verdict, doc = run(cls, RELAXED[cls], text)
    assert verdict is None
    value = doc[metric]
    assert value > 0, f"{metric} is 0 on this text: the test would prove nothing"
    step = 1 if isinstance(value, int) else 1e-9
    at = with_threshold(cls, param, value)
    if compare == "max":
        keep, drop = at, with_threshold(cls, param, value - step)
    elif compare == "min":
        keep, drop = at, with_threshold(cls, param, value + step)
    elif compare == "max_incl":
        drop, keep = at, with_threshold(cls, param, value + step)
    else:
        drop, keep = at, with_threshold(cls, param, value - step)
    assert run(cls, keep, text)[0] is None
    assert run(cls, drop, text)[0] == reason


@pytest.mark.parametrize("cls, param, metric, compare, reason, text", CASES, ids=[f"{c[0].kind}-{c[4]}" for c in CASES])
def test_rule_at_both_sides_of_a_per_language_threshold(cls, param, metric, compare, reason, text):
    """The same thresholds set in a ``per_language`` table judge the documents of that language, and only them."""
    value = run(cls, RELAXED[cls], text)[1][metric]
    step = 1 if isinstance(value, int) else 1e-9
    if isinstance(param, tuple):  # an n-gram fraction is set by its rule's name
        param = f"{param[0][:3]}_{param[1]}_gram"
    beyond = {"max": value - step, "min": value + step, "max_incl": value, "min_incl": value}[compare]
    judge = cls(**RELAXED[cls], per_language={"en": {param: beyond}})
    assert judge.apply({"text": text, "language": "en"}, Counter()) == reason
    assert judge.apply({"text": text}, Counter()) is None
    assert judge.apply({"text": text, "language": "de"}, Counter()) is None


def test_default_thresholds_keep_real_prose_and_drop_navigation():
    article = {"text": WIKI}
    menu = "\n".join(["Home", "About us", "Products", "Contact", "Log in", "Register"] * 15)
    for cls in (GopherQuality, GopherRepetition, FineWebQuality, C4Quality):
        assert cls().apply(dict(article), Counter()) is None, cls.kind
        assert cls().apply({"text": menu}, Counter()) is not None, cls.kind


def test_c4_document_rules_and_line_removal():
    events = Counter()
    text = WIKI + "\nPlease enable JavaScript to view this page.\nRead our privacy policy today.\nMenu\nHome | About"
    doc = {"text": text}
    assert C4Quality(filter_lorem_ipsum=True, filter_curly_bracket=True).apply(doc, events) is None
    assert "JavaScript" not in doc["text"] and "privacy policy" not in doc["text"] and "Home | About" not in doc["text"]
    assert events["line_javascript"] == 1 and events["line_policy"] == 1 and events["line_no_terminal_punct"] >= 2
    assert C4Quality().apply({"text": WIKI + "\nLorem ipsum dolor sit amet, consectetur."}, Counter()) == "lorem_ipsum"
    assert (
        C4Quality(filter_lorem_ipsum=False).apply(
            {"text": WIKI + "\nLorem ipsum dolor sit amet, consectetur."}, Counter()
        )
        is None
    )
    code = WIKI + "\nfunction f() { return 1; } is a small function."
    assert C4Quality().apply({"text": code}, Counter()) == "curly_bracket"
    assert C4Quality(filter_curly_bracket=False).apply({"text": code}, Counter()) is None


@pytest.mark.parametrize(
    "cls, params, param",
    [
        (GopherQuality, dict(min_doc_words=100, max_doc_words=10), "min_doc_words"),
        (GopherQuality, dict(min_alpha_words_ratio=1.5), "min_alpha_words_ratio"),
        (GopherRepetition, dict(dup_line_frac=-0.1), "dup_line_frac"),
        (GopherRepetition, dict(top_n_grams=[(0, 0.2)]), "top_n_grams"),
        (FineWebQuality, dict(short_line_thr=2.0), "short_line_thr"),
        (C4Quality, dict(min_words_per_line=-1), "min_words_per_line"),
    ],
)
def test_out_of_range_parameters_name_the_parameter(cls, params, param):
    with pytest.raises(ConfigError) as err:
        cls(**params)
    assert err.value.key == param


def reference_top_chars(words: list[str], n: int) -> int:
    """datatrove's find_top_duplicate on its space-joined n-grams."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    gram, count = Counter(grams).most_common(1)[0]
    return len(gram) * count


def reference_duplicated_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate: scan, count a repeated n-gram's characters, jump over it."""
    seen, total, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in seen:
            total += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return total


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_ngram_counts_equal_the_string_reference(seed):
    from filters.gopher import _NGrams

    rng = __import__("random").Random(seed)
    vocab = ["a", "bb", "ccc", "the", "whale", "sea", ".", ","][: rng.randint(2, 8)]
    words = [rng.choice(vocab) for _ in range(rng.randint(0, 400))]
    if seed % 5 == 0:  # long verbatim repeats, as in boilerplate
        words = words[:50] * 4 + words
    grams = _NGrams(words)
    for n in range(2, 11):
        assert grams.top_chars(n) == reference_top_chars(words, n), n
        assert grams.duplicated_chars(n) == reference_duplicated_chars(words, n), n
