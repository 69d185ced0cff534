"""Deduplication of plain text files, for use outside a workflow: a list of files in, the kept ones
written with the same names to an output folder (line dedup writes every file, without its duplicated
lines). The same stage code runs as in a workflow, in this process unless an executor is given."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipeline.documents import document_schema, load_documents, write_documents
from pipeline.engine.executor import Executor, LocalExecutor
from pipeline.inputs import Shard
from pipeline.reader import read_items
from pipeline.rundir import RunDir
from pipeline.stages.base import GlobalContext, GlobalStage, output_fields
from pipeline.stages.dedup.exact import ExactDedupOptions, ExactDedupStage
from pipeline.stages.dedup.lines import LineDedupOptions, LineDedupStage
from pipeline.stages.dedup.minhash import MinHashDedupStage, MinHashOptions

FILES_PER_SHARD = 2_000  # a shard is one task of the first phases: bounds their memory


def line_dedup_files(
    input_files, output_directory, *, keep_blank_lines: bool = True, executor: Executor | None = None
) -> list[Path]:
    """Remove every line that occurs more than once across ``input_files``; write every file (possibly
    empty) to ``output_directory`` under its own name."""
    stage = LineDedupStage(name="line_dedup", options=LineDedupOptions(keep_blank_lines=keep_blank_lines))
    return _run(stage, input_files, output_directory, executor, keep_rejected=True)


def exact_dedup_files(
    input_files, output_directory, *, normalize: bool = True, executor: Executor | None = None
) -> list[Path]:
    """Write the files whose (normalised) text no earlier file in ``input_files`` has."""
    stage = ExactDedupStage(name="exact_dedup", options=ExactDedupOptions(normalize=normalize))
    return _run(stage, input_files, output_directory, executor)


def minhash_dedup_files(
    input_files,
    output_directory,
    *,
    num_hashes: int = 112,
    num_bands: int = 0,
    ngram_size: int = 5,
    threshold: float = 0.8,
    verify: bool = True,
    seed: int = 1,
    executor: Executor | None = None,
) -> list[Path]:
    """Write one file per cluster of near-duplicates (MinHash LSH, the first file in input order) and every
    file without near-duplicates. ``num_bands`` = 0 fits bands and rows to ``threshold`` (see
    :class:`filters.dedup.MinHashParams`)."""
    options = MinHashOptions(
        num_hashes=num_hashes, num_bands=num_bands, ngram_size=ngram_size, threshold=threshold, verify=verify, seed=seed
    )
    return _run(MinHashDedupStage(name="minhash_dedup", options=options), input_files, output_directory, executor)


def files_as_run(paths: list[Path], run_dir: str, files_per_shard: int = FILES_PER_SHARD) -> tuple[RunDir, list]:
    """Plain text files as the input of a global stage in ``run_dir``: one Parquet shard of documents (id: the
    file name) per ``files_per_shard`` files, with the statistics a stage reads; the run and its shards."""
    run = RunDir(run_dir)
    shards = []
    for i in range(0, max(len(paths), 1), files_per_shard):
        shard = Shard(f"{len(shards):06d}-0000", "files", 0, None)
        docs = [
            {"id": p.name, "url": str(p), "text": read_file_text(p), "source": str(p), "offset": 0}
            for p in paths[i : i + files_per_shard]
        ]
        write_documents(run, run.kept("files", shard.id), docs, document_schema([]))
        run.write_json(run.shard_stats("files", shard.id), {"docs_kept": len(docs)})
        shards.append(shard)
    return run, shards


def read_file_text(path: Path) -> str:
    """The whole text of a file, line endings kept as they are."""
    return "".join(item.doc["text"] for item in read_items(str(path), fmt="text"))


def _run(stage: GlobalStage, input_files, output_directory, executor, keep_rejected: bool = False) -> list[Path]:
    paths = [Path(p) for p in input_files]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError("input files must have distinct names: the output folder holds them side by side")
    with tempfile.TemporaryDirectory(prefix="refinery-dedup-") as tmp:
        run, shards = files_as_run(paths, tmp)
        ctx = GlobalContext(run, shards, "files", executor or LocalExecutor(progress=False), output_fields([stage])[0])
        stage.run_global(ctx)
        out = Path(output_directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for shard in shards:
            docs = load_documents(run, run.kept(stage.name, shard.id))
            if keep_rejected:
                docs += load_documents(run, run.rejected(stage.name, shard.id))
            for doc in docs:
                target = out / doc["id"]
                with open(target, "w", encoding="utf-8", newline="") as f:
                    f.write(doc["text"])
                written.append(target)
    return sorted(written, key=lambda p: names.index(p.name))
