"""Turn HTML bytes into text. Order: byte-order mark; bytes that are valid UTF-8 (and not plain ASCII)
are UTF-8 whatever a header claims (a legacy label on UTF-8 text is the common mislabel, while legacy
text is almost never valid UTF-8); then the HTTP header charset, the HTML meta charset, detection.
Labels are mapped the way browsers map them (WHATWG: ISO-8859-1 is read as Windows-1252, GB2312 as GBK).
Decoding never raises: undecodable bytes become U+FFFD."""

from __future__ import annotations

import codecs
import re

from resiliparse.parse.encoding import bytes_to_str, detect_encoding, map_encoding_to_html5

_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_\-.:]{1,40})""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# a declared charset is kept when at most this share of characters fails to decode (stray bytes happen)
MAX_REPLACEMENT_SHARE = 0.01


def meta_charset(html: bytes) -> str | None:
    """The charset named by a ``<meta charset>`` or ``http-equiv`` tag in the first 4 KiB, if any."""
    m = _META_CHARSET.search(html, 0, 4096)
    return m.group(1).decode("ascii") if m else None


def decode_html(body: bytes, http_charset: str | None) -> tuple[str, str, str]:
    """Decode an HTML payload; returns (text, Python codec name, source: bom|utf8|http|meta|detected)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, "replace"), encoding, "bom"
    if not body.isascii():
        try:
            return body.decode("utf-8"), "utf-8", "utf8"
        except UnicodeDecodeError:
            pass
    for source, label in (("http", http_charset), ("meta", meta_charset(body))):
        encoding = map_encoding_to_html5(label, fallback_utf8=False) if label else None
        if encoding is None or (encoding.startswith("utf-16") and b"\x00" not in body[:1024]):
            continue  # a UTF-16 label on bytes without NULs is wrong (browsers read such a meta tag as UTF-8)
        text = _decode_if_clean(body, encoding)
        if text is not None:
            return text, codecs.lookup(encoding).name, source
    encoding = detect_encoding(body)
    return bytes_to_str(body, encoding, errors="replace"), codecs.lookup(encoding).name, "detected"


def _decode_if_clean(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except UnicodeDecodeError:
        text = body.decode(encoding, "replace")
    except LookupError:
        return None
    if text.count("\ufffd") <= MAX_REPLACEMENT_SHARE * len(text):
        return text
    return None
