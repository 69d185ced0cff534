"""Mask personal information: e-mail addresses, phone numbers, IPv4 and IPv6 addresses.

Phone numbers need separators by default (``206-543-9196``, ``(206) 543-1695``, ``+44 20 7946 0958``): ten
bare digits are as often an order number, a meeting ID, a byte count or a thread ID as a phone number.
``bare_phones = true`` also masks ten bare digits shaped like a North American number (the area code starts
with 2-9, as in the separated forms, so Unix timestamps before 2033 and English-language ISBN-10s never match),
except after "ISBN", "DOI" or "#" on the same line (Dolma's guard). Dolma's PII regex masks such numbers; datatrove
masks no phone numbers at all.

Placeholders contain no digit, ``@`` or colon, so masking is idempotent: text that already holds a
placeholder keeps it, and masking twice equals masking once. Patterns have bounded repetition, so time is
linear in the text length.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass

from filters.base import Document, Filter, Metric, log_bins
from tokenizer.errors import require

EMAIL_PLACEHOLDER = "|||EMAIL_ADDRESS|||"
PHONE_PLACEHOLDER = "|||PHONE_NUMBER|||"
IP_PLACEHOLDER = "|||IP_ADDRESS|||"

EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,63}(?![\w-])")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?<![\d.])(?<!\d\.){_OCTET}(?:\.{_OCTET}){{3}}(?!\d|\.\d)")
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|:|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
# separators are a space, a dot or a hyphen, never a line break (numbers on separate lines are not one number)
# North American numbers: (206) 543-1695, 206-543-9196, 206.543.9196, +1 415 429 6753, 1-800-555-0100
_US_PHONE = r"(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .-]?\d{3}[ .-]\d{4}"
# international: +CC then groups of digits, 8 to 15 digits in all (E.164, checked after matching); possessive
# quantifiers take each run of digits whole, so a long digit run is never split in many ways (backtracking)
_INTL_PHONE = r"\+[1-9]\d{0,2}+(?:[ .-]?+\(\d{1,4}+\))?+(?:[ .-]?+\d++){1,6}+"
PHONE = re.compile(rf"(?<![\w+])(?:{_US_PHONE}|{_INTL_PHONE})(?![\w])")
# ten digits and nothing else: not part of a longer number, a decimal, a word, a signed value or a URL's path
BARE_PHONE = re.compile(r"(?<![\w.,+#/=-])[2-9]\d{9}(?![\w/]|[.,]\d)")
_ID_CUE = re.compile(r"\b(?:isbn|doi)\b|#", re.IGNORECASE)
_CUE_WINDOW = 40  # characters before a bare number, on its line, searched for an identifier's cue


@dataclass(kw_only=True)
class PiiMasker(Filter):
    """Replace e-mail addresses, phone numbers and IP addresses by placeholders; count them per document.
    Never drops a document. ``bare_phones`` also masks ten digits without separators (see the module's
    docstring for why that is off by default)."""

    kind = "pii"
    emails: bool = True
    phones: bool = True
    ips: bool = True
    bare_phones: bool = False

    def __post_init__(self):
        require(self.phones or not self.bare_phones, "bare_phones", "needs phones = true")

    def metrics(self):
        bins = log_bins(1, 1e4, 20)
        return (
            Metric("pii_emails", bins, integer=True),
            Metric("pii_phones", bins, integer=True),
            Metric("pii_ips", bins, integer=True),
        )

    def apply(self, doc: Document, events: Counter) -> str | None:
        text, counts = mask_pii(
            doc["text"], emails=self.emails, phones=self.phones, ips=self.ips, bare_phones=self.bare_phones
        )
        doc["text"] = text
        doc["pii_emails"], doc["pii_phones"], doc["pii_ips"] = counts
        for name, n in zip(("emails_masked", "phones_masked", "ips_masked"), counts):
            if n:
                events[name] += n
        return None


def mask_pii(
    text: str, *, emails: bool = True, phones: bool = True, ips: bool = True, bare_phones: bool = False
) -> tuple[str, tuple[int, int, int]]:
    """Masked text and the numbers of (e-mails, phone numbers, IP addresses) replaced; ``bare_phones`` also
    masks ten bare digits shaped like a North American phone number."""
    n_email = n_phone = n_ip = 0
    if emails and "@" in text:
        text, n_email = EMAIL.subn(EMAIL_PLACEHOLDER, text)
    if ips:
        text, n_ip = IPV4.subn(IP_PLACEHOLDER, text)
        if "::" in text or text.count(":") >= 7:
            text, n6 = _sub_valid(_IPV6_CANDIDATE, text, IP_PLACEHOLDER, _is_ipv6)
            n_ip += n6
    if phones:
        text, n_phone = _sub_valid(PHONE, text, PHONE_PLACEHOLDER, _is_phone)
        if bare_phones:
            text, n_bare = _sub_bare_phones(text)
            n_phone += n_bare
    return text, (n_email, n_phone, n_ip)


def _sub_valid(pattern: re.Pattern, text: str, placeholder: str, valid) -> tuple[str, int]:
    """Replace the matches of ``pattern`` for which ``valid(match_text)`` holds; count them."""
    count = 0

    def replace(m: re.Match) -> str:
        nonlocal count
        if not valid(m.group(0)):
            return m.group(0)
        count += 1
        return placeholder

    return pattern.sub(replace, text), count


def _sub_bare_phones(text: str) -> tuple[str, int]:
    """Replace the bare ten-digit numbers of ``text`` that no identifier's cue precedes on their line."""
    count = 0

    def replace(m: re.Match) -> str:
        nonlocal count
        window = max(0, m.start() - _CUE_WINDOW)
        if _ID_CUE.search(text, max(window, text.rfind("\n", window, m.start()) + 1), m.start()):
            return m.group(0)
        count += 1
        return PHONE_PLACEHOLDER

    return BARE_PHONE.sub(replace, text), count


def _is_ipv6(candidate: str) -> bool:
    if not any(c.isalnum() for c in candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _is_phone(candidate: str) -> bool:
    return 8 <= sum(c.isdigit() for c in candidate) <= 15
