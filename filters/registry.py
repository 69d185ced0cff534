"""The filter kinds a workflow file can name: every filter class under its ``kind``. A new filter is a
module of this package with a :class:`filters.base.Filter` subclass, added to :data:`FILTERS` here."""

from __future__ import annotations

from filters.base import Filter
from filters.c4 import C4Quality
from filters.classifiers import QualityClassifier
from filters.fineweb import FineWebQuality
from filters.gopher import GopherQuality, GopherRepetition
from filters.language import LanguageFilter
from filters.pii import PiiMasker
from filters.toxicity import C4BadWords, Toxicity
from filters.url import UrlFilter

FILTERS: dict[str, type[Filter]] = {
    cls.kind: cls
    for cls in (
        UrlFilter,
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
