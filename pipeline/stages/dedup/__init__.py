"""Deduplication stages across the whole corpus: ``exact_dedup`` (same normalised text), ``minhash_dedup``
(near-duplicates by MinHash LSH, connected components over verified pairs), ``line_dedup`` (lines seen more
than once), ``paragraph_dedup`` (paragraphs or n-gram spans seen before, through Bloom filters) and
``sentence_dedup`` (spans of three sentences seen before). Each runs phases of tasks over hash-partitioned
files (:mod:`pipeline.engine.shuffle`)."""
