"""Build the C extension of the tokenizer (the BPE training merge loop); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("tokenizer._bpe", ["tokenizer/_bpe.c"], extra_compile_args=["-O3"])])
