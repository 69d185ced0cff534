"""Build the language-identification fine-tuning task from Tatoeba sentences (CC-BY 2.0, https://tatoeba.org).

    python data/sft/make_language_id.py [TSV] [OUT_DIR]

Reads the labelled sentences (default: tests/fixtures/text/tatoeba/tatoeba_long.tsv, columns CLD2 code,
ISO 639-3 codes, text), cuts each row into chunks of at most 80 UTF-8 bytes at word boundaries, and writes
``language_id.train.jsonl`` and ``language_id.valid.jsonl``: prompt "Which language is this? <chunk>",
response the CLD2 language code. The last row of every language is held out whole, so no held-out chunk
shares a sentence with a training chunk. Pseudo-languages (CLD2 ``xx-*``: cuneiform, Gothic script) are left
out. Output is deterministic.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 80
MIN_CHARS = 12
PROMPT = "Which language is this? "


def chunks(text: str) -> list[str]:
    """Pieces of ``text`` of at most MAX_BYTES UTF-8 bytes, cut between words (inside a word only when one
    word is longer, as in scripts written without spaces)."""
    out, current = [], ""
    for word in text.split():
        while len(word.encode()) > MAX_BYTES:
            head = word
            while len(head.encode()) > MAX_BYTES:
                head = head[: len(head) * 3 // 4]
            if current:
                out.append(current)
                current = ""
            out.append(head)
            word = word[len(head) :]
        candidate = f"{current} {word}" if current else word
        if len(candidate.encode()) > MAX_BYTES:
            out.append(current)
            candidate = word
        current = candidate
    if current:
        out.append(current)
    return [c for c in out if len(c) >= MIN_CHARS]


def main(tsv: Path, out_dir: Path) -> None:
    rows = defaultdict(list)
    with open(tsv, encoding="utf-8", newline="") as f:
        for record in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if not record["CLD2-code"].startswith("xx-"):
                rows[record["CLD2-code"]].append(record["text"])
    split = {"train": [], "valid": []}
    for code in sorted(rows):
        texts = rows[code]
        for i, text in enumerate(texts):
            part = "valid" if i == len(texts) - 1 and len(texts) > 1 else "train"
            split[part] += [{"prompt": PROMPT + c, "response": code} for c in chunks(text)]
    out_dir.mkdir(parents=True, exist_ok=True)
    for part, examples in split.items():
        random.Random(part).shuffle(examples)
        with open(out_dir / f"language_id.{part}.jsonl", "w", encoding="utf-8") as f:
            for e in examples:
                f.write(json.dumps(e, ensure_ascii=False) + "\n")
        print(f"{part}: {len(examples)} examples, {len({e['response'] for e in examples})} languages")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        Path(args[0]) if args else ROOT / "tests/fixtures/text/tatoeba/tatoeba_long.tsv",
        Path(args[1]) if len(args) > 1 else Path(__file__).resolve().parent,
    )
