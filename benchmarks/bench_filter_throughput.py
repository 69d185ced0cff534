#!/usr/bin/env python3
"""Per-core throughput of extraction + language ID + rule filters + PII masking: refinery against datatrove.

Run with the project's environment (the datatrove side runs in its own virtualenv, made on first use)::

    .venv/bin/python benchmarks/bench_filter_throughput.py            # full: 60 MB of HTML, 3 repeats
    .venv/bin/python benchmarks/bench_filter_throughput.py --quick    # 300 pages, 1 repeat, no trafilatura

Both sides read the same WARC (built by ``build_corpus.py`` from Debian documentation packages) in one process
pinned to one CPU, in the same run, interleaved repeat by repeat:

* ours: ``benchmarks/throughput.toml`` (the stages of ``workflows/demo.toml``) loaded with
  ``pipeline.workflow.load_workflow`` and run on the whole file as one shard with
  ``pipeline.stages.process_shard``, which extracts, filters and writes the Parquet outputs as a real run does;
* datatrove: ``datatrove_side.py`` in ``benchmarks/.work/venv-datatrove`` -- WarcReader, a resiliparse
  extractor (the equivalent one) or Trafilatura, LanguageFilter, Gopher repetition and quality, C4, FineWeb,
  PIIFormatter, ParquetWriter, with ``LocalPipelineExecutor(tasks=1, workers=1)``.

Clocks start after imports and model loading on both sides (reported apart as set-up). The table shows the
median of the repeats (and the best wall time); ratio = our documents/s divided by the anchor's (datatrove
with the resiliparse extractor).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
DT_VENV = WORK / "venv-datatrove"
LID_MODEL = ROOT / "filters" / "models" / "lid.176.ftz"
SHARD_ID = "000000-0000"

sys.path.insert(0, str(ROOT))  # the project (also installed editable by ./dev)
sys.path.insert(0, str(HERE))


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- datatrove's environment ------------------------------------------------------------------------------------


def datatrove_requirements() -> list[str]:
    # resiliparse pinned to the project's version, so that both sides run the same extraction code
    return [
        "datatrove[io,processing]==0.10.1",
        "spacy>=3.8,<3.9",
        "lxml_html_clean",
        f"resiliparse=={importlib.metadata.version('resiliparse')}",
    ]


def ensure_datatrove_venv() -> Path:
    """The datatrove virtualenv's python, created and installed from PyPI unless already done."""
    python = DT_VENV / "bin" / "python"
    marker = DT_VENV / ".bench-requirements.json"
    wanted = datatrove_requirements()
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return python
    base = shutil.which("python3") or sys.executable
    log(f"creating {DT_VENV} with {base} and installing {' '.join(wanted)} (a minute or two)")
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(DT_VENV)], check=True)
    res = subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"pip install for datatrove failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    marker.write_text(json.dumps(wanted))
    return python


# -- our side ---------------------------------------------------------------------------------------------------


def set_work(folder: Path) -> None:
    """Use ``folder`` for the benchmark's corpus, workflow copies and outputs."""
    global WORK, DT_VENV
    WORK, DT_VENV = folder.resolve(), folder.resolve() / "venv-datatrove"
    WORK.mkdir(parents=True, exist_ok=True)


def write_workflow(warc: Path) -> Path:
    """benchmarks/throughput.toml with [input].paths set to ``warc`` (absolute), written into .work/."""
    text = (HERE / "throughput.toml").read_text()
    text, n = re.subn(r"(?m)^paths = \[.*\]", lambda _: f"paths = [{json.dumps(str(warc))}]", text)
    assert n == 1, "throughput.toml: expected one 'paths = [...]' line"
    text = re.sub(r'(?m)^output = ".*"', lambda _: f"output = {json.dumps(str(WORK / 'runs'))}", text)
    path = WORK / f"throughput-{warc.name.split('.')[0]}.toml"
    path.write_text(text)
    return path


class Ours:
    def __init__(self, warc: Path):
        started = time.perf_counter()
        from filters.models import DEFAULT_LID_MODEL, load_fasttext
        from pipeline.workflow import load_workflow

        self.warc = warc
        self.workflow = load_workflow(str(write_workflow(warc)))
        load_fasttext(str(DEFAULT_LID_MODEL))  # the language filter's model, cached per process: load it now
        self.setup_s = time.perf_counter() - started

    def run_once(self, out_dir: Path) -> dict:
        from pipeline.inputs import Shard
        from pipeline.rundir import RunDir
        from pipeline.stages.base import ShardContext, process_shard

        shutil.rmtree(out_dir, ignore_errors=True)
        wf = self.workflow
        run = RunDir(str(out_dir))
        ctx = ShardContext(
            run, Shard(SHARD_ID, str(self.warc), 0, None), wf.run.on_error, int(wf.input.max_record_bytes)
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        summary = process_shard(ctx, wf.stages, [False] * len(wf.stages))
        wall_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        stats = [run.read_json(run.shard_stats(stage.name, SHARD_ID)) for stage in wf.stages]
        return {
            "side": "refinery",
            "read": stats[0]["records"].get("response", 0) + stats[0]["records"].get("conversion", 0),
            "kept": summary[wf.stages[-1].name][1],
            "wall_s": wall_s,
            "cpu_s": cpu_s,
            "setup_s": self.setup_s,
            "stages": {
                s["stage"]: {
                    "in": s["docs_in"],
                    "kept": s["docs_kept"],
                    "dropped": s["dropped"],
                    "elapsed_s": round(s["elapsed_s"], 3),
                    "steps": {t["name"]: t["docs_in"] - sum(t["dropped"].values()) for t in s["steps"]},
                }
                for s in stats
            },
        }


# -- datatrove's side -------------------------------------------------------------------------------------------


def run_datatrove(python: Path, warc: Path, extractor: str, out_dir: Path, timeout: float | None) -> dict:
    cmd = [
        str(python),
        str(HERE / "datatrove_side.py"),
        "--warc",
        str(warc),
        "--out",
        str(out_dir),
        "--lid-model",
        str(LID_MODEL),
        "--extractor",
        extractor,
    ]
    if timeout:
        cmd += ["--extract-timeout", str(timeout)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    process_s = time.perf_counter() - t0
    (WORK / f"datatrove-{extractor}.log").write_text(res.stderr)
    if res.returncode != 0:
        sys.exit(
            f"datatrove side failed ({res.returncode}); see {WORK / f'datatrove-{extractor}.log'}:\n"
            f"{res.stderr[-4000:]}"
        )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    out["process_s"] = process_s
    return out


# -- report -----------------------------------------------------------------------------------------------------


def summarize(runs: list[dict], html_mb: float) -> dict:
    walls = [r["wall_s"] for r in runs]
    wall = statistics.median(walls)
    last = runs[-1]
    return {
        "side": last["side"],
        "read": last["read"],
        "kept": last["kept"],
        "wall_s": wall,
        "best_s": min(walls),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "setup_s": statistics.median(r["setup_s"] for r in runs),
        "docs_per_s": last["read"] / wall,
        "mb_per_s": html_mb / wall,
        "n": len(runs),
        "consistent": len({(r["read"], r["kept"]) for r in runs}) == 1,
    }


def print_table(rows: list[dict], anchor: dict, ours: dict) -> None:
    head = (
        f"{'pipeline (1 core)':<31}{'docs read':>10}{'kept':>7}{'wall s':>9}{'best s':>9}{'cpu s':>8}"
        f"{'setup s':>9}{'docs/s':>9}{'MB/s':>7}{'ours/this':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = ours["docs_per_s"] / r["docs_per_s"]
        name = r["side"] + (" (anchor)" if r is anchor else "")
        print(
            f"{name:<31}{r['read']:>10}{r['kept']:>7}{r['wall_s']:>9.2f}{r['best_s']:>9.2f}{r['cpu_s']:>8.2f}"
            f"{r['setup_s']:>9.2f}{r['docs_per_s']:>9.1f}{r['mb_per_s']:>7.2f}{ratio:>10.2f}x"
            + ("" if r["consistent"] else "  (counts varied between repeats!)")
        )


def profile_ours(ours: Ours, top: int) -> None:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    ours.run_once(WORK / "out-ours-profile")
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    print(f"\ncProfile of our side (one run, sorted by cumulative time, top {top}):")
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-pages", type=int, default=0, help="benchmark a WARC of only this many pages")
    ap.add_argument("--max-mb", type=float, default=None, help="MB of HTML in the benchmark WARC (default 60)")
    ap.add_argument("--quick", action="store_true", help="300 pages, 1 repeat, no trafilatura")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per side; the median is reported")
    ap.add_argument(
        "--trafilatura",
        choices=["off", "once", "all"],
        default="once",
        help="also time datatrove with its Trafilatura extractor: never, in the first repeat, or every one",
    )
    ap.add_argument(
        "--extract-timeout",
        type=float,
        default=None,
        help="datatrove's per-document extraction timeout (default: datatrove's own)",
    )
    ap.add_argument("--cpu", type=int, default=0, help="pin both sides to this CPU (-1: no pinning)")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="afterwards, profile our side once and print the top N functions by cumulative time",
    )
    ap.add_argument("--json", type=Path, help="also write all measurements to this file")
    ap.add_argument(
        "--dry-run",
        type=Path,
        metavar="WARC",
        help="check the set-up: run our side once on this WARC (no corpus build, no datatrove) and print its counts",
    )
    ap.add_argument("--work", type=Path, default=WORK, help=f"scratch folder (default {WORK})")
    args = ap.parse_args(argv)
    set_work(args.work)
    if args.dry_run:
        r = Ours(args.dry_run.resolve()).run_once(WORK / "out-dry-run")
        print(f"dry run on {args.dry_run}: {r['read']} read, {r['kept']} kept in {r['wall_s']:.2f} s")
        return 0
    if args.quick:
        args.max_pages, args.repeats = args.max_pages or 300, 1
        if args.trafilatura == "once":
            args.trafilatura = "off"

    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # inherited by the datatrove subprocess and its extractor child

    import build_corpus

    max_mb = build_corpus.DEFAULT_MAX_MB if args.max_mb is None else args.max_mb
    warc = WORK / build_corpus.default_name(max_mb, args.max_pages)
    manifest = build_corpus.build(warc, max_mb=max_mb, max_pages=args.max_pages)
    html_mb = manifest["html_bytes"] / 1e6
    dt_python = ensure_datatrove_venv()

    ours = Ours(warc)
    extractors = ["resiliparse"] + (["trafilatura"] if args.trafilatura != "off" else [])
    runs: dict[str, list[dict]] = {"refinery": [], **{e: [] for e in extractors}}
    for i in range(args.repeats):
        r = ours.run_once(WORK / "out-ours")
        runs["refinery"].append(r)
        log(f"repeat {i + 1}/{args.repeats}: refinery {r['wall_s']:.2f}s ({r['read']} read, {r['kept']} kept)")
        for e in extractors:
            if e == "trafilatura" and args.trafilatura == "once" and i > 0:
                continue
            r = run_datatrove(dt_python, warc, e, WORK / f"out-datatrove-{e}", args.extract_timeout)
            runs[e].append(r)
            log(
                f"repeat {i + 1}/{args.repeats}: datatrove+{e} {r['wall_s']:.2f}s ({r['read']} read, "
                f"{r['kept']} kept; process {r['process_s']:.1f}s)"
            )

    rows = {k: summarize(v, html_mb) for k, v in runs.items()}
    mine, anchor = rows["refinery"], rows["resiliparse"]
    cpu = f"CPU {args.cpu}" if args.cpu >= 0 else "no CPU pinning"
    print(
        f"\nWARC: {warc} ({manifest['responses']} responses, {html_mb:.1f} MB of HTML, "
        f"{manifest['english_pages']} pages from English manuals); {cpu}"
    )
    print(
        f"wall/cpu s: median of {args.repeats} repeat(s) (trafilatura: {rows.get('trafilatura', {}).get('n', 0)}); "
        f"best s: fastest repeat; setup s (not timed): imports, workflow, model load\n"
    )
    print_table([mine, anchor] + ([rows["trafilatura"]] if "trafilatura" in rows else []), anchor, mine)
    print(
        f"\nratio ours/datatrove (anchor, resiliparse extractor), documents/s per core: "
        f"{mine['docs_per_s'] / anchor['docs_per_s']:.2f}x"
    )

    print("\ndocuments left after each step (seconds spent in it, last repeat):")
    st = runs["refinery"][-1]["stages"]
    chain = []
    for name, stage in st.items():
        chain += [f"{step} {left}" for step, left in stage["steps"].items()] or [f"{name} {stage['kept']}"]
    print(
        "  refinery: "
        + " -> ".join(chain)
        + "  (stages: "
        + ", ".join(f"{k} {v['elapsed_s']:.1f}s" for k, v in st.items())
        + ", plus Parquet writes)"
    )
    reasons = sorted(((r, n) for v in st.values() for r, n in v["dropped"].items()), key=lambda kv: -kv[1])
    print("    dropped: " + ", ".join(f"{r} {n}" for r, n in reasons))
    for e in extractors:
        steps = runs[e][-1]["steps"]
        parts = [
            f"{k.split(': ', 1)[-1].strip()} {v.get('forwarded', v.get('documents', v.get('total', 0)))} "
            f"({v.get('time_s', 0):.1f}s)"
            for k, v in steps.items()
        ]
        extra = [
            f"{k}={v}"
            for s in steps.values()
            for k, v in s.items()
            if k in ("timeout", "clean_error", "broken_process")
        ]
        print(f"  datatrove+{e}: " + " -> ".join(parts) + (f"  [extractor {', '.join(extra)}]" if extra else ""))

    if args.json:
        args.json.write_text(
            json.dumps({"warc": str(warc), "manifest": manifest, "summary": rows, "runs": runs}, indent=1)
        )
    if args.profile:
        profile_ours(ours, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
