"""Decoder-only Transformer training on token shards: model, optimizers, loop, checkpoints, SFT."""
