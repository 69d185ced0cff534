"""Byte-level BPE training, the Tokenizer and the packed token-shard format (see the tokenizer issue)."""
