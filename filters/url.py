"""``url``: keep or drop documents by their URL (a WARC record's target URI, the document's ``url``) against
block and allow lists of domains, hosts and URL patterns, as datatrove's ``URLFilter`` and C4's and
RefinedWeb's block lists do.

A list is a file (path or URL, fetched once) or the rules written in the workflow; one rule per line, ``#``
starts a comment line:

* ``example.com`` -- a domain or host: it and every subdomain (``www.example.com``, ``a.b.example.com``);
  hosts-file lines (``0.0.0.0 ads.example.net``) are read as their host;
* ``example.com/forum/*``, ``*.example.net/*``, ``*/wp-login.php*`` -- a URL pattern, with ``*`` for any
  characters, matched against the whole URL without its scheme (``host/path?query``); without a ``/``
  (``ads.*.example.org``) against the host alone;
* ``example.com/page.html`` (a ``/`` and no ``*``) -- that URL exactly (any scheme, no ``#fragment``);
* ``re:^[^/]*casino`` -- a regular expression searched in the URL without its scheme.

Hosts and patterns are compared in lower case. Domains and exact URLs are kept as sorted 64-bit hashes (8
bytes a rule, so multi-million-line lists fit), and a host is looked up by its suffixes.

A URL matching a block rule is dropped (``blocked``) unless an allow rule matches it too; with
``allow_only`` every URL that no allow rule matches is dropped (``not_allowed``). The deciding list and rule
are the labels ``url_list`` and ``url_rule`` (counted per value in the statistics) and the ``detail``.
Documents without a URL are kept and counted (event ``no_url``), or dropped as ``no_url`` with
``allow_only``.
"""

from __future__ import annotations

import functools
import operator
import os
import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import xxhash

from filters.base import Document, Filter
from filters.models import local_copy, local_path
from tokenizer.errors import invalid, require

_SCHEME = re.compile(r"^[a-z*][a-z0-9+.*-]*://", re.IGNORECASE)
_HOSTS_FILE_ADDRESSES = ("0.0.0.0", "127.0.0.1", "::1", "::")
_PLAIN_DOMAIN = re.compile(r"^[ \t]*([^\s/*#:]+)[ \t]*\r?$", re.MULTILINE)  # a line that is one domain
_OTHER_RULE = re.compile(r"^(?![ \t]*(?:#|\r?$))(?![ \t]*[^\s/*#:]+[ \t]*\r?$).+$", re.MULTILINE)
_strip_dots = operator.methodcaller("strip", ".")
# scheme, user info, host (or [IPv6]), port, then path and query up to the fragment
_URL_PARTS = re.compile(r"(?:[a-z][a-z0-9+.-]*://)?(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::[^/?#]*)?([^#]*)", re.I)


@dataclass(frozen=True)
class Target:
    """A URL as rules see it: its lower-case host and ``host + path?query`` (no scheme, port or fragment)."""

    host: str
    address: str

    @classmethod
    def of(cls, url: str) -> "Target":
        """The target of ``url`` (with or without a scheme); user info, port and fragment are left out."""
        m = _URL_PARTS.match(url.strip())
        host = m.group(1).lower().strip("[]").rstrip(".")
        rest = m.group(2)
        return cls(host, host + (rest if rest.startswith("/") else "/" + rest))


def _hash(text: str) -> int:
    return xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))


class RuleList:
    """The compiled rules of one list (``chunks`` of its text, each of whole lines); ``name`` names it in labels.
    Plain domain lines, nearly all of a large list, are found with one regular expression per chunk and hashed
    without a Python loop (4.6 million lines in a few seconds); the other lines are parsed one by one."""

    def __init__(self, name: str, chunks: Iterable[str]):
        self.name = name
        domains, exact = [], []
        self.host_patterns: list[tuple[re.Pattern, str]] = []
        self.url_patterns: dict[str, list[tuple[re.Pattern, str]]] = {}  # literal host -> its patterns
        self.any_host_patterns: list[tuple[re.Pattern, str]] = []
        line = 1
        for text in chunks:
            plain = _PLAIN_DOMAIN.findall(text)
            hashed = map(xxhash.xxh3_64_intdigest, map(str.encode, map(str.lower, map(_strip_dots, plain))))
            domains.append(np.fromiter(hashed, dtype=np.uint64, count=len(plain)))
            for m in _OTHER_RULE.finditer(text):
                try:
                    kind, value, rule = parse_rule(m.group())
                except ValueError as exc:
                    raise ValueError(f"{name} line {line + text.count(chr(10), 0, m.start())}: {exc}") from None
                if kind == "domain":  # a hosts-file line
                    domains.append(np.array([_hash(value)], dtype=np.uint64))
                elif kind == "url":
                    exact.append(_hash(value))
                elif kind == "host_pattern":
                    self.host_patterns.append((value, rule))
                elif kind == "pattern" and "*" not in rule.split("/", 1)[0]:
                    self.url_patterns.setdefault(rule.split("/", 1)[0], []).append((value, rule))
                else:  # a regex, or a pattern whose host has a wildcard: tried on every URL
                    self.any_host_patterns.append((value, rule))
            line += text.count("\n")
        hashed = _sorted_set(np.concatenate(domains + [np.array(exact, dtype=np.uint64)]))
        self.hashed = array("Q", hashed.tobytes())  # domains and exact URLs (a URL has a '/', a domain none)
        self.plain_rules = sum(map(len, domains)) + len(exact)

    def __len__(self) -> int:
        patterns = sum(map(len, self.url_patterns.values())) + len(self.host_patterns) + len(self.any_host_patterns)
        return self.plain_rules + patterns

    def _listed(self, text: str) -> bool:
        keys, key = self.hashed, _hash(text)
        i = bisect_left(keys, key)
        return i < len(keys) and keys[i] == key

    def match(self, target: Target) -> str | None:
        """The rule that matches ``target`` (the most specific domain first), or None."""
        if self.hashed:
            labels = target.host.split(".") if target.host else []
            for i in range(len(labels)):
                suffix = ".".join(labels[i:])
                if self._listed(suffix):
                    return suffix
            if self._listed(target.address):
                return target.address
        for pattern, text in self.host_patterns:
            if pattern.fullmatch(target.host):
                return text
        for pattern, text in self.url_patterns.get(target.host, ()):
            if pattern.fullmatch(target.address):
                return text
        for pattern, text in self.any_host_patterns:
            if (pattern.search if text.startswith("re:") else pattern.fullmatch)(target.address):
                return text
        return None


def _sorted_set(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (by sorting: numpy's hash-based ``unique`` is several times slower here)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def parse_rule(line: str) -> tuple[str, object, str] | None:
    """(kind, compiled value, rule text) of one list line; None for blank and comment lines."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith("re:"):
        try:
            return "regex", re.compile(line[3:], re.IGNORECASE), line
        except re.error as exc:
            raise ValueError(f"not a regular expression: {line[3:]!r} ({exc})") from None
    fields_ = line.split()
    if len(fields_) == 2 and fields_[0] in _HOSTS_FILE_ADDRESSES:
        line = fields_[1]
    elif len(fields_) != 1:
        raise ValueError(f"expected one domain, URL or pattern per line, got {line!r}")
    line = _SCHEME.sub("", line)
    if "*" in line:
        pattern = re.compile(".*".join(map(re.escape, line.lower().split("*"))), re.IGNORECASE | re.DOTALL)
        return ("host_pattern" if "/" not in line else "pattern"), pattern, line.lower()
    if "/" in line:
        address = Target.of(line).address
        return "url", address, address
    domain = line.strip(".").lower()
    return "domain", domain, domain


@functools.lru_cache(maxsize=8)
def load_rules(source: str) -> RuleList:
    """The rules of a list file (path or URL), read once per process."""
    with open(local_copy(source), encoding="utf-8", errors="replace") as f:
        return RuleList(os.path.basename(source.rstrip("/")) or source, _whole_lines(f))


def _whole_lines(f, size: int = 1 << 22) -> Iterator[str]:
    """The text of ``f`` in pieces of about ``size`` characters that end at line ends."""
    rest = ""
    while chunk := f.read(size):
        text = rest + chunk
        cut = text.rfind("\n") + 1
        if cut:
            yield text[:cut]
        rest = text[cut:]
    if rest:
        yield rest


@functools.lru_cache(maxsize=8)
def inline_rules(name: str, rules: tuple[str, ...]) -> RuleList:
    return RuleList(name, ["\n".join(rules)])


@dataclass(kw_only=True)
class UrlFilter(Filter):
    """Drop documents whose URL a block rule matches (unless an allow rule does too); with ``allow_only``,
    keep only those an allow rule matches. ``block`` / ``allow`` name list files (paths or URLs);
    ``block_rules`` / ``allow_rules`` are rules written in the workflow."""

    kind = "url"
    labels = ("url_list", "url_rule")
    path_params = ("block", "allow")
    block: str = ""
    allow: str = ""
    block_rules: list[str] = field(default_factory=list)
    allow_rules: list[str] = field(default_factory=list)
    allow_only: bool = False

    def __post_init__(self):
        for name in ("block", "allow"):
            local = local_path(getattr(self, name)) if getattr(self, name) else None
            require(local is None or os.path.isfile(local), name, f"no such file: {getattr(self, name)}")
        for name in ("block_rules", "allow_rules"):
            for i, line in enumerate(getattr(self, name)):
                try:
                    parse_rule(line)
                except ValueError as exc:
                    raise invalid(f"{name}[{i}]", str(exc)) from None
        allows = bool(self.allow or self.allow_rules)
        require(
            bool(self.block or self.block_rules) or self.allow_only,
            "block",
            "expected a block list, block_rules or allow_only = true",
        )
        require(allows or not self.allow_only, "allow_only", "needs an allow list or allow_rules")

    def _lists(self, which: str) -> tuple[RuleList, ...]:
        return _rule_lists(which, getattr(self, which), tuple(getattr(self, f"{which}_rules")))

    def apply(self, doc: Document, events: Counter) -> str | None:
        doc["url_list"] = doc["url_rule"] = None
        url = doc.get("url") or ""
        if not url:
            events["no_url"] += 1
            return "no_url" if self.allow_only else None
        target = Target.of(url)
        blocked = _first_match(self._lists("block"), target)
        allowed = _first_match(self._lists("allow"), target) if blocked or self.allow_only else None
        if allowed:
            doc["url_list"], doc["url_rule"] = allowed
            events["allowed_despite_block"] += blocked is not None
            return None
        if blocked:
            doc["url_list"], doc["url_rule"] = blocked
            doc["detail"] = f"{target.host} matches {blocked[1]!r} in {blocked[0]}"
            return "blocked"
        if self.allow_only:
            doc["detail"] = f"no allow rule matches {target.address[:200]}"
            return "not_allowed"
        return None


@functools.lru_cache(maxsize=16)
def _rule_lists(which: str, path: str, rules: tuple[str, ...]) -> tuple[RuleList, ...]:
    """The lists of one side (``block`` or ``allow``): its file's, then its inline rules'."""
    return ((load_rules(path),) if path else ()) + ((inline_rules(f"{which}_rules", rules),) if rules else ())


def _first_match(lists: tuple[RuleList, ...], target: Target) -> tuple[str, str] | None:
    for rules in lists:
        rule = rules.match(target)
        if rule is not None:
            return rules.name, rule
    return None
