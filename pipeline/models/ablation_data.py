"""The data of an ablation, made comparable before any model trains: every dataset's documents (a run's
document stage, document files, or token shards), checked for overlap with the reference texts, one shared
tokenizer (given, or trained on an equal-sized sample of every dataset; in ``<output>/data/tokenizer/``
either way, where the trainer finds it next to the shards), and every dataset encoded with it into
``<output>/data/<name>/``; the reference texts as a token shard (``<output>/eval/reference``, for the
curves) and as the evaluation suite (documents and likelihood items, for the verdict).

Each step is skipped on a rerun once its outputs are complete (a dataset's ``data/<name>.json`` is written after
its shards; the tokenizer's ``sample.json`` after its files)."""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Callable, Iterator

from filters.dedup import shingle_hashes
from pipeline.documents import load_column
from pipeline.models.ablation_file import Ablation, DatasetSpec
from pipeline.reader import read_documents, read_texts
from pipeline.rundir import RunDir
from pipeline.stages.decontaminate import EvalIndex, eval_index
from tokenizer.bpe import Tokenizer
from tokenizer.errors import ConfigError
from tokenizer.shards import ShardReader, ShardWriter
from tokenizer.train import count_pretokens, train_from_counts
from trainer.ablation import EvalSuite
from trainer.data import find_shards
from trainer.eval_tasks import build_items
from trainer.evaluation import encode_item

TOKEN_STAGES = ("tokenize", "training_shards")  # stages whose outputs are not documents
Part = tuple[str, Callable[[], Iterator[tuple[str, list[int] | None]]]]  # (name, its (text, ids or None))


def dataset_parts(ablation: Ablation, index: int, tokenizer: Tokenizer | None, run_workflow=None) -> list[Part]:
    """The parts of dataset ``index`` in input order, each an iterator of (text, token ids when the source
    holds them). ``run_workflow(workflow)`` runs (or resumes) a dataset given as a workflow file."""
    spec = ablation.datasets[index]
    key = f"ablation.datasets[{index}]"
    if spec.shards:
        return _shard_parts(ablation.path, key, spec, tokenizer)
    if spec.documents:
        files = [f for pattern in spec.documents for f in sorted(glob.glob(pattern))]
        if not files:
            raise ConfigError(ablation.path, f"{key}.documents", f"no file matches {spec.documents}")
        return [(f"{i:05d}", lambda f=f: ((t, None) for t in read_texts(f))) for i, f in enumerate(files)]
    run_dir = spec.run
    if spec.workflow:
        from pipeline.workflow import load_workflow

        workflow = load_workflow(spec.workflow)
        run_dir = workflow.run_dir()
        if _unfinished(run_dir, spec.stage) is not None and run_workflow is not None:
            run_workflow(workflow)
    return _run_parts(ablation.path, key, spec, run_dir)


def _unfinished(run_dir: str, stage: str) -> str | None:
    """Why ``stage`` (default: the last document stage) of the run is not complete, or None if it is."""
    run = RunDir(run_dir)
    if not run.exists(run.path("workflow.json")):
        return f"{run_dir} holds no run (no workflow.json)"
    recorded = run.read_json(run.path("workflow.json"))
    stages = [s["name"] for s in recorded["stages"] if s["kind"] not in TOKEN_STAGES]
    stage = stage or (stages[-1] if stages else "")
    if stage not in stages:
        return f"{run_dir} has no document stage {stage!r} (its document stages: {', '.join(stages)})"
    ids = [s["id"] for s in recorded["shards"]]
    done = run.done_shards(stage)
    missing = [i for i in ids if i not in done]
    if missing:
        return f"stage {stage} of {run_dir} has finished {len(ids) - len(missing)} of {len(ids)} shards"
    return None


def _run_parts(path: str, key: str, spec: DatasetSpec, run_dir: str) -> list[Part]:
    """The kept documents of a run's document stage, one part per shard."""
    problem = _unfinished(run_dir, spec.stage)
    if problem:
        raise ConfigError(path, f"{key}.{spec.source()}", f"{problem}; run its workflow first")
    run = RunDir(run_dir)
    recorded = run.read_json(run.path("workflow.json"))
    stage = spec.stage or [s["name"] for s in recorded["stages"] if s["kind"] not in TOKEN_STAGES][-1]

    def texts(shard: str):
        return ((t, None) for t in load_column(run, run.kept(stage, shard), "text"))

    return [(s["id"], lambda s=s["id"]: texts(s)) for s in recorded["shards"]]


def _shard_parts(path: str, key: str, spec: DatasetSpec, tokenizer: Tokenizer) -> list[Part]:
    """Token shards written with the ablation's tokenizer: their documents' ids, and their text for the
    overlap check."""
    prefixes = [p for pattern in spec.shards for p in find_shards(pattern)]
    if not prefixes:
        raise ConfigError(path, f"{key}.shards", f"no token shards match {spec.shards}")
    for prefix in prefixes:
        written = ShardReader(prefix).header.get("tokenizer_hash")
        if written != tokenizer.hash:
            raise ConfigError(
                path,
                f"{key}.shards",
                f"{prefix} was written by tokenizer {written}, not by "
                f"[ablation.tokenizer] path ({tokenizer.hash}); give its documents to re-encode them",
            )

    def documents(prefix: str):
        shard = ShardReader(prefix)
        for i in range(len(shard)):
            ids = shard.document(i).tolist()
            yield tokenizer.decode(ids), ids

    return [(os.path.basename(p), lambda p=p: documents(p)) for p in prefixes]


def reference_documents(ablation: Ablation) -> list[dict]:
    """The reference documents, interleaved file by file (the first documents mix every file, which the
    curves' partial evaluation reads): ``id``, ``file`` and ``text``."""
    per_file = [
        [{"id": str(d.get("id")), "file": f, "text": d["text"]} for d in read_documents(f) if d["text"]]
        for f in ablation.reference_files
    ]
    out = []
    for i in range(max(map(len, per_file), default=0)):
        out += [docs[i] for docs in per_file if i < len(docs)]
    return out


def overlap_index(ablation: Ablation) -> EvalIndex:
    """The reference texts' n-grams, as the ``decontaminate`` stage indexes its evaluation sets."""
    return eval_index((("reference", tuple(ablation.reference_files)),), ablation.eval.ngram_size)


def overlaps(index: EvalIndex, text: str, ngram_size: int) -> bool:
    """Whether ``text`` shares an n-gram with the reference texts."""
    return bool((index.lookup(shingle_hashes(text, ngram_size)) >= 0).any())


def shared_tokenizer(ablation: Ablation, parts: dict[str, list[Part]], index: EvalIndex) -> Tokenizer:
    """The given tokenizer, or the one trained (once) on an equal-sized sample of every dataset: the first
    documents of each, without those overlapping the reference texts, up to ``sample_bytes`` or the smallest
    dataset's size; ``<output>/data/tokenizer/sample.json`` records the sample."""
    settings = ablation.tokenizer
    folder = ablation.path_of("data", "tokenizer")
    if settings.path:
        tokenizer = Tokenizer.load(settings.path)
        tokenizer.save(folder)  # next to the shards, where the trainer looks for it
        return tokenizer
    if os.path.exists(os.path.join(folder, "sample.json")):
        return Tokenizer.load(folder)
    samples = {
        name: _sample(p, int(settings.sample_bytes), index, ablation.eval.ngram_size) for name, p in parts.items()
    }
    size = min(sum(len(t.encode("utf-8")) for t in texts) for texts in samples.values())
    counts, used = None, {}
    for name, texts in samples.items():
        cut = _first_bytes(texts, size)
        used[name] = {"documents": len(cut), "bytes": sum(len(t.encode("utf-8")) for t in cut)}
        part = count_pretokens(cut, settings.special_tokens)
        counts = part if counts is None else counts + part
    if not counts:
        raise ConfigError(ablation.path, "ablation.datasets", "no dataset holds any text to train a tokenizer on")
    tokenizer = Tokenizer(
        *train_from_counts(counts, settings.vocab_size, settings.special_tokens), settings.special_tokens
    )
    tokenizer.save(folder)
    record = {"hash": tokenizer.hash, "vocab_size": len(tokenizer), "sample_bytes": size, "datasets": used}
    _write_json(os.path.join(folder, "sample.json"), record)
    return tokenizer


def _sample(parts: list[Part], budget: int, index: EvalIndex, ngram_size: int) -> list[str]:
    """The first documents of a dataset, without those overlapping the reference, up to ``budget`` bytes."""
    texts, used = [], 0
    for _, documents in parts:
        for text, _ in documents():
            if used >= budget:
                return texts
            if not overlaps(index, text, ngram_size):
                texts.append(text)
                used += len(text.encode("utf-8"))
    return texts


def _first_bytes(texts: list[str], size: int) -> list[str]:
    """``texts`` cut to ``size`` UTF-8 bytes in all (the last one cut short)."""
    out, used = [], 0
    for text in texts:
        data = text.encode("utf-8")
        if used + len(data) >= size:
            out.append(data[: size - used].decode("utf-8", errors="ignore"))
            return out
        out.append(text)
        used += len(data)
    return out


def encode_dataset(ablation: Ablation, name: str, parts: list[Part], tokenizer: Tokenizer, index: EvalIndex) -> dict:
    """Write dataset ``name`` as token shards of the shared tokenizer into ``<output>/data/<name>/`` (one per
    part), leaving out documents that overlap the reference texts unless ``overlap = "keep"``; its summary,
    also ``<output>/data/<name>.json``. Done once: a rerun reads the summary back."""
    folder = ablation.path_of("data", name)
    summary_path = folder + ".json"
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        if summary["tokenizer_hash"] == tokenizer.hash:
            return summary
    shutil.rmtree(folder, ignore_errors=True)
    eos = tokenizer.special_ids[ablation.tokenizer.eos_token]
    counts = dict.fromkeys(("documents", "overlapping", "bytes", "tokens", "shards"), 0)
    drop = ablation.eval.overlap == "drop"
    for part, documents in parts:
        writer = None
        for text, ids in documents():
            if overlaps(index, text, ablation.eval.ngram_size):
                counts["overlapping"] += 1
                if drop:
                    continue
            if writer is None:
                writer = ShardWriter(
                    os.path.join(folder, part), vocab_size=len(tokenizer), eos_id=eos, tokenizer_hash=tokenizer.hash
                )
            ids = tokenizer.encode(text) if ids is None else ids
            writer.write(ids)
            counts["documents"] += 1
            counts["bytes"] += len(text.encode("utf-8"))
            counts["tokens"] += len(ids) + 1
        if writer is not None:
            writer.close()
            counts["shards"] += 1
    if not counts["documents"]:
        raise ConfigError(ablation.path, "ablation.datasets", f"dataset {name!r} holds no document to train on")
    summary = {
        "name": name,
        **counts,
        "dropped": counts["overlapping"] if drop else 0,
        "tokenizer_hash": tokenizer.hash,
    }
    _write_json(summary_path, summary)
    return summary


def evaluation_suite(ablation: Ablation, tokenizer: Tokenizer) -> EvalSuite:
    """The reference documents and the likelihood items built from them, encoded; also written for people
    (``<output>/eval/items.jsonl``) and, as a token shard, for the curves (``<output>/eval/reference``)."""
    docs = reference_documents(ablation)
    if not docs:
        raise ConfigError(ablation.path, "ablation.eval.reference", "the reference files hold no text")
    eos = tokenizer.special_ids[ablation.tokenizer.eos_token]
    encoded = [tokenizer.encode(d["text"]) for d in docs]
    e = ablation.eval
    items = build_items([(d["id"], d["text"]) for d in docs], e.items_per_document, e.choices, e.seed)
    folder = ablation.path_of("eval")
    os.makedirs(folder, exist_ok=True)
    prefix = os.path.join(folder, "reference")
    if not os.path.exists(prefix + ".json") or ShardReader(prefix).header["tokenizer_hash"] != tokenizer.hash:
        with ShardWriter(prefix, vocab_size=len(tokenizer), eos_id=eos, tokenizer_hash=tokenizer.hash) as writer:
            for ids in encoded:
                writer.write(ids)
        with open(os.path.join(folder, "items.jsonl"), "w") as f:
            f.writelines(json.dumps(item.to_dict()) + "\n" for item in items)
    return EvalSuite(
        documents=encoded,
        document_bytes=[len(d["text"].encode("utf-8")) for d in docs],
        items=[encode_item(item, tokenizer.encode, eos) for item in items],
        eos_id=eos,
        document_ids=[d["id"] for d in docs],
        document_sources=[_source_name(d["file"]) for d in docs],
    )


def _source_name(path: str) -> str:
    """A reference file's name without folder and extensions: ``rust-book`` for ``data/eval/rust-book.jsonl``."""
    return os.path.basename(path).split(".")[0]


def tokens_per_byte(suite: EvalSuite) -> float:
    """The reference texts' tokens (with each document's EOS) per byte: turns the curves' loss per token into
    bits per byte."""
    return sum(len(d) + 1 for d in suite.documents) / sum(suite.document_bytes)


def _write_json(path: str, record: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
