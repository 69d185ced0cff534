"""The stage kinds a workflow file can name, one module each: a new kind is a :class:`~pipeline.stages.base.Stage`
(runs shard by shard) or :class:`~pipeline.stages.base.GlobalStage` (needs the whole corpus: runs phases
of tasks through :mod:`pipeline.engine`) subclass, added to :data:`STAGE_KINDS` here. Document filters are
not stages: they live in :mod:`filters` and run inside the ``filter`` stage."""

from __future__ import annotations

from pipeline.stages.base import Stage
from pipeline.stages.decontaminate import DecontaminateStage
from pipeline.stages.dedup.exact import ExactDedupStage
from pipeline.stages.dedup.lines import LineDedupStage
from pipeline.stages.dedup.minhash import MinHashDedupStage
from pipeline.stages.dedup.paragraphs import ParagraphDedupStage
from pipeline.stages.dedup.sentences import SentenceDedupStage
from pipeline.stages.extract import ExtractStage
from pipeline.stages.filter import FilterStage
from pipeline.stages.tokenize import TokenizeStage
from pipeline.stages.top_fraction import TopFractionStage
from pipeline.stages.training_shards import TrainingShardsStage

STAGE_KINDS: dict[str, type[Stage]] = {
    cls.kind: cls
    for cls in (
        ExtractStage,
        FilterStage,
        DecontaminateStage,
        ExactDedupStage,
        LineDedupStage,
        MinHashDedupStage,
        ParagraphDedupStage,
        SentenceDedupStage,
        TopFractionStage,
        TokenizeStage,
        TrainingShardsStage,
    )
}
