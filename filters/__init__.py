"""Per-document logic, free of any execution engine: WARC reading, extraction, language ID, quality rules
and classifiers, toxicity, PII masking. Every filter class is registered in :data:`FILTERS` under the
``kind`` a workflow file names."""

from filters.base import Filter
from filters.c4 import C4Quality
from filters.classifiers import QualityClassifier
from filters.fineweb import FineWebQuality
from filters.gopher import GopherQuality, GopherRepetition
from filters.language import LanguageFilter
from filters.pii import PiiMasker
from filters.toxicity import C4BadWords, Toxicity

FILTERS: dict[str, type[Filter]] = {
    cls.kind: cls
    for cls in (
        LanguageFilter,
        GopherQuality,
        GopherRepetition,
        C4Quality,
        C4BadWords,
        FineWebQuality,
        QualityClassifier,
        Toxicity,
        PiiMasker,
    )
}
