"""Per-document logic, free of any execution engine: WARC reading, extraction, language ID, quality rules
and classifiers, toxicity, PII masking, dedup primitives. ``filters.base`` holds the interface every filter
implements; ``filters.registry.FILTERS`` maps the ``kind`` a workflow file names to its class (add a new
filter there). Importing this package loads no filter, so reading a run's outputs stays light."""
