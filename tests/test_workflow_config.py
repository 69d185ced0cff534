"""Workflow files: every malformed one is refused before any work, naming the file, the key, the expectation."""

from __future__ import annotations

import re
import textwrap

import pytest

from pipeline.cli import main
from pipeline.schema import ByteSize
from pipeline.workflow import load_workflow
from tests.helpers import ROOT, WARC_DIR
from tokenizer.errors import ConfigError

GOOD = f"""
[run]
name = "t"

[input]
paths = ["{WARC_DIR}/warcio/*.warc.gz"]

[[stages]]
kind = "extract"

[[stages]]
kind = "filter"
[[stages.filters]]
kind = "language"
threshold = 0.5
"""


def write(tmp_path, text: str):
    path = tmp_path / "wf.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_workflow_loads(tmp_path):
    wf = load_workflow(str(write(tmp_path, GOOD)))
    assert [s.name for s in wf.stages] == ["extract", "filter"]
    assert len(wf.input_files) == 1
    assert wf.stages[1].steps[0].filter.threshold == 0.5


@pytest.mark.parametrize(
    "change, key, expected",
    [
        (
            ("[run]", "[rnu]"),
            "rnu",
            "unknown section; expected one of: run, input, storage, stages, train, sft, generate",
        ),
        (('name = "t"', 'nmae = "t"'), "run.nmae", "unknown key; expected one of: name, on_error, output"),
        (('name = "t"', ""), "run.name", "missing required key (a string)"),
        (('name = "t"', 'name = "a/b"'), "run.name", "expected a plain directory name"),
        (('name = "t"', 'name = "t"\non_error = "ignore"'), "run.on_error", "expected one of 'skip', 'raise'"),
        (("threshold = 0.5", 'threshold = "high"'), "stages[1].filters[0].threshold", "expected a number, got 'high'"),
        (("threshold = 0.5", "threshold = 1.5"), "stages[1].filters[0].threshold", "must be between 0 and 1"),
        (
            ("threshold = 0.5", "treshold = 0.5"),
            "stages[1].filters[0].treshold",
            "unknown key; expected one of: languages, model, threshold",
        ),
        (("threshold = 0.5", 'languages = "en"'), "stages[1].filters[0].languages", "expected a list of strings"),
        (('kind = "language"', 'kind = "langauge"'), "stages[1].filters[0].kind", "unknown filter 'langauge'"),
        (('kind = "filter"', 'kind = "filtr"'), "stages[1].kind", "unknown stage kind 'filtr'; expected one of"),
        (
            ('kind = "extract"', 'kind = "extract"\nmain_content = "yes"'),
            "stages[0].main_content",
            "expected true or false",
        ),
        (('kind = "extract"', 'kind = "extract"\nmax_payload_bytes = 0'), "stages[0].max_payload_bytes", "must be > 0"),
        (
            ('[[stages]]\nkind = "extract"', '[[stages]]\nkind = "filter"\nfilters = [{kind = "pii"}]'),
            "stages[0].kind",
            "the first stage must be 'extract'",
        ),
        (('kind = "filter"', 'kind = "filter"\nname = "extract"'), "stages[1].name", "names must be unique"),
        (("paths = [", 'split_bytes = "64 parsecs"\npaths = ['), "input.split_bytes", "expected a size in bytes"),
        (("paths = [", "split_bytes = 1000\npaths = ["), "input.split_bytes", "expected at least 64KiB"),
        (
            (f'"{WARC_DIR}/warcio/*.warc.gz"', '"/nonexistent/*.warc.gz"'),
            "input.paths[0]",
            "no file matches '/nonexistent/*.warc.gz'",
        ),
        (
            (f'"{WARC_DIR}/warcio/*.warc.gz"', '"nosuchprotocol://bucket/*.warc.gz"'),
            "input.paths[0]",
            "cannot list 'nosuchprotocol://bucket/*.warc.gz': ValueError: Protocol not known: nosuchprotocol",
        ),
        (("[input]", "[input]\npaths2 = 1"), "input.paths2", "unknown key"),
        (("threshold = 0.5", "threshold = 1.5"), "stages[1].filters[0].threshold", "must be between 0 and 1"),
        (
            ('name = "t"', f'name = "t"\noutput = "{WARC_DIR}/warcio/runs"'),
            "run.output",
            f"the run directory {WARC_DIR}/warcio/runs/t lies inside {WARC_DIR}/warcio, which input.paths[0] reads",
        ),
    ],
)
def test_malformed_workflows_are_refused_with_file_key_and_expectation(tmp_path, change, key, expected):
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_workflow(str(path))
    message = str(err.value)
    assert err.value.key == key
    assert message.startswith(f"{path}: {key}: ")
    assert expected in message


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, GOOD.replace('name = "t"', "name = t"))
    with pytest.raises(ConfigError, match=r"wf\.toml: not valid TOML: .*line 3"):
        load_workflow(str(path))


def test_cli_refuses_before_any_work_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, GOOD.replace("threshold = 0.5", "threshold = -1"))
    code = main(["run", str(path), "--output", str(tmp_path / "runs")])
    assert code == 2
    assert "stages[1].filters[0].threshold: must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_shipped_workflows_are_valid(capsys, tmp_path):
    for path in sorted((ROOT / "workflows").glob("*.toml")):
        text = path.read_text()
        if "../runs/demo/quality/kept/*.parquet" in text:  # reads another run's outputs: stand-in documents
            import pyarrow as pa
            import pyarrow.parquet as pq

            (tmp_path / "docs").mkdir()
            pq.write_table(pa.table({"id": ["a"], "text": ["a document"]}), tmp_path / "docs" / "a.parquet")
            text = text.replace("../runs/demo/quality/kept/*.parquet", f"{tmp_path}/docs/*.parquet")
            path = tmp_path / path.name
            path.write_text(text.replace('output = "../runs"', f'output = "{tmp_path}/runs"'))
        if "s3://commoncrawl/" in text:  # the cluster recipe: everything but its remote inputs and models
            text = re.sub(r"(?m)^paths = .*$", f'paths = ["{WARC_DIR}/warcio/*.warc.gz"]', text)
            text = re.sub(r'(?m)^output = "s3://.*$', f'output = "{tmp_path}"', text)
            text = text.replace('"s3://my-bucket/models/lid.176.bin"', '""')
            path = tmp_path / path.name
            path.write_text(text)
        assert main(["validate", str(path)]) == 0
        assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("text, value", [(123, 123), ("64MiB", 64 << 20), ("1.5GB", 1_500_000_000), ("512k", 512_000)])
def test_byte_sizes(text, value):
    assert ByteSize.parse(text) == value


def test_model_paths_are_relative_to_the_workflow_file(tmp_path):
    import shutil

    (tmp_path / "models").mkdir()
    shutil.copy(ROOT / "filters/models/lid.176.ftz", tmp_path / "models/my-lid.ftz")
    wf = load_workflow(str(write(tmp_path, GOOD.replace("threshold = 0.5", 'model = "models/my-lid.ftz"'))))
    assert wf.stages[1].steps[0].filter.model == str(tmp_path / "models/my-lid.ftz")


DEDUP = (
    GOOD
    + """
[[stages]]
kind = "minhash_dedup"
num_hashes = 112
num_bands = 14
"""
)


@pytest.mark.parametrize(
    "change, key, expected",
    [
        (("num_bands = 14", "num_bands = 15"), "stages[2].num_hashes", "must be a multiple of num_bands (15)"),
        (("num_bands = 14", "num_bands = 14\nthreshold = 0"), "stages[2].threshold", "must be in (0, 1]"),
        (("num_bands = 14", "num_bands = 14\nverify = 1"), "stages[2].verify", "expected true or false"),
        (
            ("num_bands = 14", "num_bands = 14\nbands = 3"),
            "stages[2].bands",
            "unknown key; expected one of: docs_per_partition, max_bucket_size",
        ),
        (
            (
                'kind = "minhash_dedup"\nnum_hashes = 112\nnum_bands = 14',
                'kind = "line_dedup"\nkeep_blank_lines = "no"',
            ),
            "stages[2].keep_blank_lines",
            "expected true or false",
        ),
        (
            (
                'kind = "minhash_dedup"\nnum_hashes = 112\nnum_bands = 14',
                'kind = "exact_dedup"\ndocs_per_partition = 0',
            ),
            "stages[2].docs_per_partition",
            "must be >= 1",
        ),
    ],
)
def test_malformed_dedup_stages_are_refused(tmp_path, change, key, expected):
    old, new = change
    assert old in DEDUP
    path = write(tmp_path, DEDUP.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_workflow(str(path))
    assert err.value.key == key
    assert expected in str(err.value)


def test_a_good_dedup_workflow_loads(tmp_path):
    wf = load_workflow(str(write(tmp_path, DEDUP)))
    assert wf.stages[2].options.rows_per_band == 8
