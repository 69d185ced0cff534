"""The ``url`` filter on the target URIs of the sample WARC files: domains with their subdomains, exact URLs,
patterns and regexes, allow lists as exceptions and as the only way in, lists read from files and over
HTTP, and per-list and per-rule counts in a workflow's statistics."""

from __future__ import annotations

import functools
import http.server
import threading
from collections import Counter
from urllib.parse import urlsplit

import pyarrow.parquet as pq
import pytest

from filters.url import RuleList, Target, UrlFilter
from filters.warc import iter_records
from pipeline.engine.executor import LocalExecutor
from pipeline.runner import run_workflow
from pipeline.workflow import load_workflow
from tests.helpers import SAMPLE_WARCS, WARC_DIR
from tokenizer.errors import ConfigError


@functools.cache
def sample_urls() -> tuple[str, ...]:
    """Every response record's target URI in the sample WARC files, as the extract stage writes it."""
    urls = []
    for path in SAMPLE_WARCS:
        with open(path, "rb") as f:
            for record in iter_records(f):
                if getattr(record, "type", None) == "response":
                    urls.append(record.headers.get("warc-target-uri", "").strip().strip("<>"))
    return tuple(u for u in urls if u)


def verdicts(flt: UrlFilter, urls) -> dict[str, str | None]:
    out = {}
    for url in urls:
        doc = {"url": url, "text": ""}
        out[url] = flt.apply(doc, Counter())
    return out


def host(url: str) -> str:
    return urlsplit(url).hostname or ""


def test_a_domain_blocks_itself_and_its_subdomains_only():
    urls = sample_urls()
    assert len(urls) > 600
    flt = UrlFilter(block_rules=["debian.org", "psb556.com", "live-radsport.ch"])
    got = verdicts(flt, urls)
    for url, verdict in got.items():
        h = host(url)
        expected = any(h == d or h.endswith("." + d) for d in ("debian.org", "psb556.com", "live-radsport.ch"))
        assert (verdict == "blocked") == expected, url
    blocked_hosts = {host(u) for u, v in got.items() if v}
    assert blocked_hosts == {"www.debian.org", "035.psb556.com", "06.live-radsport.ch"}
    # a rule is a whole label: "ebian.org" or "org.uk" match nothing here
    assert not any(verdicts(UrlFilter(block_rules=["ebian.org", "handbook.info"]), urls).values())


def test_the_most_specific_rule_is_named_and_hosts_file_lines_are_hosts():
    doc = {"url": "https://www.debian.org/doc/manuals/", "text": ""}
    flt = UrlFilter(block_rules=["debian.org", "0.0.0.0 www.debian.org", "# a comment", ""])
    assert flt.apply(doc, Counter()) == "blocked"
    assert (doc["url_list"], doc["url_rule"]) == ("block_rules", "www.debian.org")
    assert doc["detail"] == "www.debian.org matches 'www.debian.org' in block_rules"


def test_patterns_exact_urls_and_regexes():
    urls = sample_urls()
    rules = [
        "docs.python.org/3.11/library/*",  # one host, a path prefix
        "*.github.io/20*",  # any subdomain, dated posts
        "http://0513mt.com/index.php/art/detail/id/8884.html",  # one URL exactly, scheme ignored
        r"re:^[^/]*\.cn/",  # hosts under .cn
        "www.iana.*",  # a host pattern: any TLD
    ]
    got = verdicts(UrlFilter(block_rules=rules), urls)
    for url, verdict in got.items():
        path = urlsplit(url).path
        expected = (
            (host(url) == "docs.python.org" and path.startswith("/3.11/library/"))
            or (host(url).endswith(".github.io") and path.startswith("/20"))
            or url == "http://0513mt.com/index.php/art/detail/id/8884.html"
            or host(url).endswith(".cn")
            or host(url).startswith("www.iana.")
        )
        assert (verdict == "blocked") == expected, url
    assert sum(v == "blocked" for v in got.values()) > 60
    lists = RuleList("rules", ["\n".join(rules)])
    assert lists.match(Target.of("https://0513MT.com/index.php/art/detail/id/8884.html#top")) == rules[2].split("//")[1]
    assert lists.match(Target.of("https://0513mt.com/index.php/art/detail/id/8885.html")) is None


def test_allow_rules_are_exceptions_or_the_only_way_in():
    urls = sample_urls()
    flt = UrlFilter(block_rules=["debian.org", "debian-handbook.info"], allow_rules=["www.debian.org/releases/*"])
    got = verdicts(flt, urls)
    releases = [u for u in urls if host(u) == "www.debian.org" and urlsplit(u).path.startswith("/releases/")]
    assert releases and all(got[u] is None for u in releases)
    assert all(got[u] == "blocked" for u in urls if host(u) == "debian-handbook.info")
    events: Counter = Counter()
    doc = {"url": releases[0], "text": ""}
    assert flt.apply(doc, events) is None
    assert events["allowed_despite_block"] == 1 and doc["url_list"] == "allow_rules"

    only = UrlFilter(allow_rules=["python.org", "apache.org"], allow_only=True)
    got = verdicts(only, urls)
    for url, verdict in got.items():
        keep = host(url).endswith(("python.org", "apache.org"))
        assert verdict == (None if keep else "not_allowed"), url
    assert only.apply({"url": "", "text": ""}, Counter()) == "no_url"
    events = Counter()
    assert UrlFilter(block_rules=["example.com"]).apply({"url": None, "text": ""}, events) is None
    assert events == {"no_url": 1}


def test_lists_are_read_from_files_and_urls(tmp_path):
    urls = sample_urls()
    hosts = sorted({host(u) for u in urls if host(u)})
    listed = hosts[::3]
    (tmp_path / "blocked.txt").write_text("# sample hosts\n" + "\n".join(listed) + "\n")

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        over_http = UrlFilter(block=f"http://127.0.0.1:{server.server_port}/blocked.txt")
        from_file = UrlFilter(block=str(tmp_path / "blocked.txt"))
        a, b = verdicts(over_http, urls), verdicts(from_file, urls)
    finally:
        server.shutdown()
    assert a == b
    assert {host(u) for u, v in a.items() if v} == set(listed)


def test_bad_settings_are_refused_with_the_key():
    with pytest.raises(ConfigError, match="block_rules\\[1\\]: not a regular expression"):
        UrlFilter(block_rules=["example.com", "re:(unclosed"])
    with pytest.raises(ValueError, match="rules line 3: not a regular expression"):
        RuleList("rules", ["example.com\n# a comment\nre:(unclosed\n"])
    with pytest.raises(ConfigError, match="block: no such file"):
        UrlFilter(block="/nonexistent/list.txt")
    with pytest.raises(ConfigError, match="allow_only: needs an allow list"):
        UrlFilter(allow_only=True)
    with pytest.raises(ConfigError, match="block: expected a block list"):
        UrlFilter(allow_rules=["example.com"])


WORKFLOW = """
[run]
name = "urls"
[input]
paths = ["{warcs}/debian-docs/*.warc.gz", "{warcs}/dolma/*.warc.gz"]
[[stages]]
kind = "extract"
[[stages]]
kind = "filter"
  [[stages.filters]]
  kind = "url"
  name = "docs_sites"
  block = "lists/docs.txt"
  allow_rules = ["docs.python.org/3.11/tutorial/*"]
  [[stages.filters]]
  kind = "url"
  name = "github_pages"
  block_rules = ["github.io"]
"""


def test_workflow_counts_per_list_and_rule(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "docs.txt").write_text("docs.python.org\nhttpd.apache.org/docs/2.4/*/mod/*\n")
    (tmp_path / "wf.toml").write_text(WORKFLOW.format(warcs=WARC_DIR))
    stats = run_workflow(
        load_workflow(str(tmp_path / "wf.toml")), output=str(tmp_path / "runs"), executor=LocalExecutor(progress=False)
    )
    stage = stats["stages"][1]
    rejected = pq.read_table(f"{stats['run']['run_dir']}/filter/rejected").to_pylist()
    by_reason = Counter(d["reason"] for d in rejected)
    assert by_reason == stage["dropped"]
    assert set(by_reason) == {"docs_sites.blocked", "github_pages.blocked"}
    rules = stage["labels"]["url_rule"]
    python = sum(1 for d in rejected if host(d["url"]) == "docs.python.org")
    assert rules["docs.python.org"] == python > 0
    assert (
        rules["httpd.apache.org/docs/2.4/*/mod/*"]
        == sum("/mod/" in d["url"] and host(d["url"]) == "httpd.apache.org" for d in rejected)
        > 0
    )
    assert rules["docs.python.org/3.11/tutorial/*"] > 0  # kept by the allow rule, and counted
    assert stage["labels"]["url_list"]["docs.txt"] == by_reason["docs_sites.blocked"]
    for doc in rejected:
        assert doc["detail"].startswith(f"{host(doc['url'])} matches {doc['url_rule']!r} in {doc['url_list']}")
    assert by_reason["github_pages.blocked"] == sum(host(d["url"]).endswith(".github.io") for d in rejected) > 5
