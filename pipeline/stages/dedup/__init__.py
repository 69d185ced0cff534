"""Deduplication stages across the whole corpus: ``exact_dedup`` (same normalised text), ``minhash_dedup``
(near-duplicates by MinHash LSH, connected components over verified pairs), ``line_dedup`` (lines seen more
than once). Each runs phases of tasks over hash-partitioned files (:mod:`pipeline.engine.shuffle`)."""
