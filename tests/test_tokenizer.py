"""The BPE tokenizer: training against the CS336 reference and a simple reimplementation, encoding against
tiktoken's GPT-2, Hugging Face export, streaming, roundtrips, bad input."""

from __future__ import annotations

import io
import json
import random

import pytest
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from filters.extract import HtmlExtractor
from filters.warc import iter_records
from tests.bpe_reference import reference_merges
from tests.helpers import FIXTURES, WARC_DIR
from tokenizer.bpe import Tokenizer
from tokenizer.formats import GPT2_PATTERN, from_chars
from tokenizer.train import count_pretokens, train_bpe, train_from_counts

BPE = FIXTURES / "cs336/bpe"
EOT = "<|endoftext|>"
TEXTS = [
    "address.txt",
    "german.txt",
    "tinystories_sample.txt",
    "corpus.en",
    "special_token_double_newlines_non_whitespace.txt",
    "special_token_trailing_newlines.txt",
]


def test_training_on_corpus_en_gives_the_reference_merges_and_vocabulary():
    vocab, merges = train_bpe(BPE / "corpus.en", 500, [EOT])
    with open(BPE / "train-bpe-reference-merges.txt", encoding="utf-8") as f:
        expected = [tuple(from_chars(part) for part in line.rstrip("\n").split(" ")) for line in f]
    assert merges == expected
    reference = json.loads((BPE / "train-bpe-reference-vocab.json").read_text(encoding="utf-8"))
    assert set(vocab) == set(reference.values())
    assert set(vocab.values()) == {k.encode() if k == EOT else from_chars(k) for k in reference}


def random_corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = ["a", "b", "ab", "ba", " ", "  ", "é", "日", "\n", "aaa", "!", "1", EOT]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(200)]


@pytest.mark.parametrize("seed", range(12))
def test_the_c_merge_loop_equals_the_simple_reference(seed):
    """Random texts are full of ties and of overlapping pairs ("aaa"), the cases where BPEs disagree."""
    texts = random_corpus(seed)
    _, merges = train_from_counts(count_pretokens(texts, [EOT]), 320, [EOT])
    assert merges == reference_merges(texts, 320, [EOT])


def test_real_pages_train_the_same_as_the_reference():
    extractor = HtmlExtractor()
    texts = []
    for record in iter_records(io.BytesIO((WARC_DIR / "dolma/sample-0000.warc.gz").read_bytes())):
        result = extractor.extract(record, "x")
        if result and result[1] is None:
            texts.append(result[0]["text"])
    _, merges = train_from_counts(count_pretokens(texts, [EOT]), 600, [EOT])
    assert merges == reference_merges(texts, 600, [EOT])


@pytest.fixture(scope="module")
def gpt2():
    return Tokenizer.from_files(BPE / "gpt2_vocab.json", BPE / "gpt2_merges.txt", [EOT], backend="python")


@pytest.fixture(scope="module")
def tiktoken_gpt2(tmp_path_factory):
    bpe = tmp_path_factory.mktemp("gpt2") / "vocab.bpe"
    bpe.write_text("#version: 0.2\n" + (BPE / "gpt2_merges.txt").read_text(encoding="utf-8"), encoding="utf-8")
    ranks = data_gym_to_mergeable_bpe_ranks(str(bpe), str(BPE / "gpt2_vocab.json"))
    return tiktoken.Encoding("gpt2-offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={EOT: 50256})


@pytest.mark.parametrize("name", TEXTS)
def test_gpt2_files_encode_like_tiktoken(gpt2, tiktoken_gpt2, name):
    text = (BPE / name).read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert ids == tiktoken_gpt2.encode(text, allowed_special="all")
    assert gpt2.decode(ids) == text


def real_text() -> str:
    extractor = HtmlExtractor()
    texts = []
    for name in (
        "debian-installation-guide/installation-guide-19lang.warc.gz",
        "dolma/sample-0001.warc.gz",
        "resiliparse/warcfile.warc.gz",
    ):
        for record in iter_records(io.BytesIO((WARC_DIR / name).read_bytes())):
            result = extractor.extract(record, "x")
            if result and result[1] is None:
                texts.append(result[0]["text"])
    return f"\n{EOT}\n".join(texts)


def test_the_tiktoken_backend_gives_the_reference_ids_on_real_text(tmp_path):
    text = real_text()
    assert len(text) > 200_000  # 99 pages in 26 languages
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    vocab, merges = train_bpe(tmp_path / "corpus.txt", 2000, [EOT])
    python = Tokenizer(vocab, merges, [EOT], backend="python")
    fast = Tokenizer(vocab, merges, [EOT], backend="tiktoken")
    assert fast.backend == "tiktoken" and Tokenizer(vocab, merges, [EOT]).backend == "tiktoken"
    for sample in (text, (BPE / "corpus.en").read_text(encoding="utf-8"), (BPE / "german.txt").read_text()):
        assert python.encode(sample) == fast.encode(sample)


def test_gpt2_backends_agree_on_real_multilingual_text(gpt2):
    text = real_text()
    fast = Tokenizer(gpt2.vocab, gpt2.merges, [EOT], backend="tiktoken")
    assert gpt2.encode(text) == fast.encode(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "héllo wörld",
        "日本語のテキスト",
        "emoji 🙂👍🏽 and \u0301 combining",
        "a" * 1000,
        f"{EOT}",
        f"a{EOT}b{EOT}{EOT}\n\n{EOT}  ",
        "tabs\tand\r\nCRLF   spaces  ",
    ],
)
def test_roundtrips(gpt2, text):
    assert gpt2.decode(gpt2.encode(text)) == text


def test_special_tokens_are_single_ids_and_the_longest_overlapping_one_wins(gpt2):
    double = EOT + EOT
    tok = Tokenizer(gpt2.vocab, gpt2.merges, [EOT, double])
    ids = tok.encode(f"x{double}y{EOT}z")
    assert ids.count(tok.special_ids[double]) == 1 and ids.count(tok.special_ids[EOT]) == 1
    assert tok.decode(ids) == f"x{double}y{EOT}z"
    assert gpt2.encode(EOT) == [50256]


def test_decode_replaces_invalid_utf8_and_never_raises(gpt2):
    lone = next(i for i, b in gpt2.vocab.items() if b == b"\xc3")  # the first byte of "é", alone
    assert gpt2.decode([lone]) == "\ufffd"
    assert gpt2.decode(gpt2.encode("a") + [lone] + gpt2.encode("b")) == "a\ufffdb"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        gpt2.decode([10**9])


@pytest.mark.parametrize("chunking", ["lines", "characters", "blocks"])
def test_encode_iterable_streams_to_the_same_ids(gpt2, chunking):
    text = (BPE / "tinystories_sample.txt").read_text(encoding="utf-8") + f"  {EOT}\n\n  trailing  "
    if chunking == "lines":
        chunks = io.StringIO(text)
    elif chunking == "characters":
        chunks = iter(text)
    else:
        chunks = (text[i : i + 7] for i in range(0, len(text), 7))
    assert list(gpt2.encode_iterable(chunks)) == gpt2.encode(text)


def test_save_load_and_hugging_face_export(gpt2, tmp_path):
    from tokenizers import Tokenizer as HFTokenizer

    vocab, merges = train_bpe(BPE / "corpus.en", 1000, [EOT])
    ours = Tokenizer(vocab, merges, [EOT])
    ours.save(tmp_path / "tok")
    again = Tokenizer.load(tmp_path / "tok")
    assert (again.vocab, again.merges, again.special_tokens, again.hash) == (vocab, merges, [EOT], ours.hash)
    hf = HFTokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    for name in TEXTS:
        text = (BPE / name).read_text(encoding="utf-8")
        assert hf.encode(text).ids == ours.encode(text), name
        assert hf.decode(ours.encode(text), skip_special_tokens=False) == text


def test_transformers_autotokenizer_knows_the_special_tokens(tmp_path):
    """tokenizer.json alone left transformers without an eos_token; the config files beside it name them."""
    from transformers import AutoTokenizer

    specials = [EOT, "<|user|>"]
    vocab, merges = train_bpe(BPE / "corpus.en", 600, specials)
    ours = Tokenizer(vocab, merges, specials)
    ours.save(tmp_path / "tok")
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert hf.eos_token == EOT and hf.eos_token_id == ours.special_ids[EOT]
    assert hf.convert_tokens_to_ids("<|user|>") == ours.special_ids["<|user|>"]
    text = "<|user|>\nHello, world!" + EOT + (BPE / "corpus.en").read_text(encoding="utf-8")[:2000]
    assert hf(text)["input_ids"] == ours.encode(text)
    assert hf.decode(ours.encode(text)) == text


@pytest.mark.parametrize(
    "problem, match",
    [
        ("small", "below 256 bytes \\+ 1 special tokens = 257"),
        ("empty", "empty corpus"),
        ("utf8", "invalid UTF-8 at byte 6"),
    ],
)
def test_bad_training_input_is_refused_clearly(tmp_path, problem, match):
    path = tmp_path / "corpus.txt"
    path.write_bytes({"small": b"some text", "empty": b"", "utf8": b"hello \xff\xfe world"}[problem])
    with pytest.raises(ValueError, match=match):
        train_bpe(path, 256 if problem == "small" else 300, [EOT])


@pytest.mark.parametrize("specials", [[EOT], [EOT, EOT + EOT]], ids=["one", "overlapping"])
def test_encode_iterable_equals_encode_for_any_chunking(gpt2, specials):
    """Whitespace runs (GPT-2's regex looks one character ahead), contractions and special tokens cut at
    every possible place."""
    tok = Tokenizer(gpt2.vocab, gpt2.merges, specials, backend="python")
    rng = random.Random(len(specials))
    parts = ["a", "word", " ", "  ", "\n", "\n\n", "\t", "!", "1", "'s", "'", "s", EOT, "<|", "|>", "é", " x", "\r\n"]
    for _ in range(3000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 30)))
        k = rng.randint(1, 6)
        assert list(tok.encode_iterable(text[i : i + k] for i in range(0, len(text), k))) == tok.encode(text), text
