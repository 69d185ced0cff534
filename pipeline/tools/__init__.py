"""Commands and APIs that work on files outside a workflow: tokenizer training and encoding
(:mod:`~pipeline.tools.tokenize_files`), token-shard inspection (:mod:`~pipeline.tools.shards`), the quality
classifier's training (:mod:`~pipeline.tools.quality`) and deduplication of plain text files
(:mod:`~pipeline.tools.dedup_files`). Every input goes through :mod:`pipeline.reader`."""
