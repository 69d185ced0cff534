"""Build the C extensions: the tokenizer's BPE training merge loop and the MinHash signatures of near-duplicate
detection; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("tokenizer._bpe", ["tokenizer/_bpe.c"], extra_compile_args=["-O3"]),
        Extension("filters._minhash", ["filters/_minhash.c"], extra_compile_args=["-O3"]),
    ]
)
