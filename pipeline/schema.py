"""Build typed config objects from TOML tables, with errors that name the file, the key and what was expected.

Config classes are dataclasses; their annotated fields are the keys a workflow file may set. Range checks
live in the classes themselves (``__post_init__`` raising :func:`tokenizer.errors.invalid`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from decimal import Decimal
from typing import Any, Literal

from tokenizer.errors import ConfigError


def load_toml(path: str, what: str) -> dict:
    """The TOML document in ``path``; a missing or malformed file is a :class:`ConfigError` naming it."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, "", f"no such {what}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


class ByteSize(int):
    """A size in bytes: an integer, or a string such as ``"64MiB"``, ``"1.5GB"``, ``"512k"``."""

    _UNITS = {
        "": 1,
        "b": 1,
        "k": 1000,
        "kb": 1000,
        "kib": 1024,
        "m": 1000**2,
        "mb": 1000**2,
        "mib": 1024**2,
        "g": 1000**3,
        "gb": 1000**3,
        "gib": 1024**3,
        "t": 1000**4,
        "tb": 1000**4,
        "tib": 1024**4,
    }
    _PATTERN = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")

    @classmethod
    def parse(cls, value: int | str) -> "ByteSize":
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        m = cls._PATTERN.fullmatch(str(value)) if isinstance(value, (str, float)) else None
        if not m or m.group(2).lower() not in cls._UNITS:
            raise ValueError(f'expected a size in bytes such as 67108864 or "64MiB", got {value!r}')
        size = Decimal(m.group(1)) * cls._UNITS[m.group(2).lower()]
        if size != size.to_integral_value():
            raise ValueError(f"expected a whole number of bytes, got {value!r} = {size} bytes")
        return cls(int(size))


_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_name(value: Any, *, file: str, key: str) -> str:
    """A stage or filter name: it names folders and prefixes drop reasons, so letters, digits, '-', '_'."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(file, key, f"expected a name of letters, digits, '-' or '_', got {describe(value)}")
    return value


def kind_and_name(entry: Any, registry: dict, *, file: str, key: str, what: str) -> tuple[str, str]:
    """The ``kind`` (a key of ``registry``) and checked ``name`` (default: the kind) of one table in a list of
    stages or filters; ``what`` names the kind in errors."""
    if not isinstance(entry, dict):
        raise ConfigError(file, key, "expected a table with a 'kind' key")
    kind = entry.get("kind")
    if kind not in registry:
        expected = ", ".join(sorted(registry))
        raise ConfigError(file, f"{key}.kind", f"unknown {what} {kind!r}; expected one of: {expected}")
    return kind, check_name(entry.get("name", kind), file=file, key=f"{key}.name")


def resolve_paths(cls: type, table: dict, file: str) -> dict:
    """``table`` with the local file parameters of ``cls`` (its ``path_params``) made absolute, relative to the
    workflow file that names them."""
    table = dict(table)
    for name in getattr(cls, "path_params", ()):
        value = table.get(name)
        if isinstance(value, str) and value and "://" not in value and not os.path.isabs(value):
            table[name] = os.path.join(os.path.dirname(os.path.abspath(file)), value)
    return table


def describe(value: Any) -> str:
    """A short rendering of a TOML value for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def build(cls: type, table: Any, *, file: str, key: str, skip: tuple[str, ...] = ()) -> Any:
    """An instance of dataclass ``cls`` from ``table``; keys in ``skip`` are ignored (read by the caller)."""
    if not isinstance(table, dict):
        raise ConfigError(file, key, f"expected a table, got {describe(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    hints = typing.get_type_hints(cls)
    for name in table:
        if name not in fields and name not in skip:
            allowed = ", ".join(sorted(fields)) or "none"
            raise ConfigError(file, _join(key, name), f"unknown key; expected one of: {allowed}")
    kwargs = {}
    for name, f in fields.items():
        if name in table:
            kwargs[name] = convert(table[name], hints[name], file=file, key=_join(key, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(file, _join(key, name), f"missing required key ({_expected(hints[name])})")
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # a check in the class names the key; the file and the table are added here
        raise exc.located(file, key) from None


def convert(value: Any, tp: Any, *, file: str, key: str) -> Any:
    """``value`` checked against type ``tp`` (and converted: int to float, lists to tuples, sizes)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    fail = ConfigError(file, key, f"expected {_expected(tp)}, got {describe(value)}")
    if tp is ByteSize:
        try:
            return ByteSize.parse(value)
        except ValueError as exc:
            raise ConfigError(file, key, str(exc)) from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail
    if origin is Literal:
        if value in args:
            return value
        raise fail
    if origin is list:
        if not isinstance(value, list):
            raise fail
        return [convert(v, args[0], file=file, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise fail
        return tuple(convert(v, t, file=file, key=f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise fail
        return {k: convert(v, args[1], file=file, key=_join(key, k)) for k, v in value.items()}
    raise TypeError(f"unsupported config type {tp!r} at {key}")


def _expected(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is ByteSize:
        return 'a size in bytes (67108864 or "64MiB")'
    if tp in (bool, int, float, str):
        return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_plural(args[0])}"
    if origin is tuple:
        return "a pair [" + ", ".join(_expected(a) for a in args) + "]"
    if origin is dict:
        return f"a table of {_plural(args[1])}"
    return str(tp)


def _plural(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return "pairs [" + ", ".join(_expected(a) for a in typing.get_args(tp)) + "]"
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(tp, _expected(tp))


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
