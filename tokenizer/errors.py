"""The one kind of configuration error that every package raises: the file a setting came from (when known),
its dotted key, and what was expected there.

It lives in ``tokenizer``, the bottom package that every other one may import (``filters``, ``trainer`` and
``pipeline`` all do), and depends on nothing. Code that checks a value without knowing its file raises
``invalid(key, expected)`` (or ``require``); the loader that read the file re-raises it with the file and the
full key (:meth:`ConfigError.located`), so a user always reads ``wf.toml: stages[1].filters[0].threshold:
must be between 0 and 1``.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that cannot be used: ``file`` (empty when not known yet), dotted ``key``, and ``expected``,
    what the setting must be."""

    def __init__(self, file: str, key: str, expected: str):
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {expected}" if where else expected)
        self.file = file
        self.key = key
        self.expected = expected

    def located(self, file: str, prefix: str = "") -> "ConfigError":
        """This error as seen from ``file``, its key under ``prefix`` (a section or table path); an error
        that already names its file is returned as it is."""
        if self.file:
            return self
        key = f"{prefix}.{self.key}" if prefix and self.key else (prefix or self.key)
        return type(self)(file, key, self.expected)


def invalid(key: str, expected: str) -> ConfigError:
    """The error for a value of ``key`` (the file is added by whoever read it)."""
    return ConfigError("", key, expected)


def require(condition: bool, key: str, expected: str) -> None:
    """Raise :func:`invalid` for ``key`` unless ``condition`` holds."""
    if not condition:
        raise invalid(key, expected)
