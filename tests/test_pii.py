"""PII masking: real pages from the Dolma sample crawl, a table of formats, things that must stay."""

from __future__ import annotations

import io
import re
from collections import Counter

import pytest

from filters.extract import HtmlExtractor
from filters.pii import EMAIL_PLACEHOLDER, IP_PLACEHOLDER, PHONE_PLACEHOLDER, PiiMasker, mask_pii
from filters.warc import iter_records
from tests.helpers import WARC_DIR
from tokenizer.errors import ConfigError


def real_pages() -> dict[str, str]:
    extractor = HtmlExtractor(main_content=False)
    pages = {}
    for name in ("dolma/sample-0000.warc.gz", "dolma/sample-0001.warc.gz"):
        for record in iter_records(io.BytesIO((WARC_DIR / name).read_bytes())):
            result = extractor.extract(record, name)
            if result and result[1] is None:
                pages[result[0]["url"]] = result[0]["text"]
    return pages


def test_real_contact_details_are_masked_and_the_prose_kept():
    pages = real_pages()
    cases = {
        "https://www.cs.washington.edu/people/faculty/weld": (["206-543-9196", "(206) 543-1695"], []),
        "https://creativecommons.org/mission/": (["+1-415-429-6753"], ["info@creativecommons.org"]),
        "https://allenai.org/reviz": (["206.548.5600"], ["ai2-info@allenai.org"]),
        "https://www.cs.cmu.edu/~anaik/": ([], ["anaik@cs.cmu.edu"]),
        "https://commoncrawl.org/faq": (["38.107.191.66", "38.107.191.119"], []),
    }
    for url, (numbers, emails) in cases.items():
        text = pages[url]
        for item in numbers + emails:
            assert item in text, (url, item)
        doc = {"text": text}
        PiiMasker().apply(doc, Counter())
        for item in numbers + emails:
            assert item not in doc["text"], (url, item)
        assert doc["pii_emails"] >= len(emails)
        assert doc["pii_phones"] + doc["pii_ips"] >= len(numbers)
        assert len(doc["text"]) > 0.8 * len(text)
    weld = {"text": pages["https://www.cs.washington.edu/people/faculty/weld"]}
    PiiMasker().apply(weld, Counter())
    assert "Box 352355\n3800 E Stevens Way" in weld["text"]  # not a phone number across a line break


def test_no_email_address_survives_on_any_real_page():
    address = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
    for url, text in real_pages().items():
        masked, _ = mask_pii(text)
        assert not address.search(masked), (url, address.search(masked))


@pytest.mark.parametrize(
    "text, masked",
    [
        ("Call (206) 543-1695 today", f"Call {PHONE_PLACEHOLDER} today"),
        ("Call 206-543-9196.", f"Call {PHONE_PLACEHOLDER}."),
        ("Call 206.548.5600 or 206 548 5600", f"Call {PHONE_PLACEHOLDER} or {PHONE_PLACEHOLDER}"),
        (
            "US +1-415-429-6753, +1 (415) 429-6753, 1-800-555-0199",
            f"US {PHONE_PLACEHOLDER}, {PHONE_PLACEHOLDER}, {PHONE_PLACEHOLDER}",
        ),
        ("(283)-182-3829", PHONE_PLACEHOLDER),
        (
            "London +44 20 7946 0958; Berlin +49 (0)30 901820; Paris +33 1 09 75 83 51",
            f"London {PHONE_PLACEHOLDER}; Berlin {PHONE_PLACEHOLDER}; Paris {PHONE_PLACEHOLDER}",
        ),
        ("mail jane.doe+news@mail.example.co.uk.", f"mail {EMAIL_PLACEHOLDER}."),
        ("server 192.168.0.1 and 8.8.8.8:53", f"server {IP_PLACEHOLDER} and {IP_PLACEHOLDER}:53"),
        ("v6 2001:db8::8a2e:370:7334, ::1 and fe80::1", f"v6 {IP_PLACEHOLDER}, {IP_PLACEHOLDER} and {IP_PLACEHOLDER}"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 end", f"full {IP_PLACEHOLDER} end"),
    ],
)
def test_formats_are_masked(text, masked):
    assert mask_pii(text)[0] == masked


@pytest.mark.parametrize(
    "text",
    [
        "On 2024-05-17 at 12:30:45 we released v1.2.3.4.5 of the library.",
        "std::vector<int> and Foo::bar() are C++.",
        "ISBN 978-3-16-148410-0 costs $1,299.99; call extension 4567.",
        "Population 100 200 3000 in 1999; zip 98195-2355.",
        "Version 10.1.300 is not an address, nor is 999.1.1.1.",
        "MAC 00:1a:2b:3c:4d:5e is not an IP address.",
        "Order number 5348583561 (ten digits, no separators).",
    ],
)
def test_lookalikes_are_left_alone(text):
    assert mask_pii(text) == (text, (0, 0, 0))


@pytest.mark.parametrize(
    "text, masked",
    [
        ("Call me at 2831823829.", f"Call me at {PHONE_PLACEHOLDER}."),
        ("tel:2831823829, fax (2831823830)", f"tel:{PHONE_PLACEHOLDER}, fax ({PHONE_PLACEHOLDER})"),
        ("Text 9175550123\nISBN below", f"Text {PHONE_PLACEHOLDER}\nISBN below"),  # the cue is on another line
    ],
)
def test_bare_ten_digit_phone_numbers_are_masked_when_asked(text, masked):
    assert mask_pii(text)[0] == text  # the default leaves bare digits alone
    assert mask_pii(text, bare_phones=True)[0] == masked
    doc = {"text": text}
    PiiMasker(bare_phones=True).apply(doc, Counter())
    assert doc["text"] == masked and doc["pii_phones"] == masked.count(PHONE_PLACEHOLDER)


@pytest.mark.parametrize(
    "text",
    [
        "Posted at Unix time 1717171717 by user 1234567890.",  # area codes never start with 0 or 1
        "ISBN 3161484100 and doi: 10.1000/2831823829; ticket #2831823829.",  # Dolma's cues
        "Eleven digits 28318238291, a decimal 2831823829.5 and 0.2831823829.",
        "Links https://example.org/item/2831823829 and ?id=2831823829 stay.",
        "Signed -2831823829 and +2831823829x are not phones; nor is A2831823829.",
    ],
)
def test_bare_lookalikes_are_left_alone_even_when_bare_numbers_are_masked(text):
    assert mask_pii(text, bare_phones=True) == (text, (0, 0, 0))


def test_bare_phones_needs_phones():
    with pytest.raises(ConfigError) as err:
        PiiMasker(phones=False, bare_phones=True)
    assert err.value.key == "bare_phones"


def test_masking_is_idempotent_and_leaves_placeholders_alone():
    text = f"Write to {EMAIL_PLACEHOLDER} or a@b.example, call {PHONE_PLACEHOLDER} or 206-543-9196 ({IP_PLACEHOLDER})"
    once, counts = mask_pii(text)
    assert counts == (1, 1, 0)
    assert once.count(EMAIL_PLACEHOLDER) == 2 and once.count(PHONE_PLACEHOLDER) == 2
    assert mask_pii(once) == (once, (0, 0, 0))


def test_adversarial_near_matches_finish():
    """Long runs that almost match: bounded repetition keeps this linear (exponential backtracking would hang)."""
    nasty = ("a." * 20000) + "@" + ("b-" * 20000) + " +1 " + "1 " * 20000 + "::" * 20000
    masked, counts = mask_pii(nasty)
    assert (masked, counts) == (nasty, (0, 0, 0))
