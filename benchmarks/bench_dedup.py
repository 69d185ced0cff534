#!/usr/bin/env python3
"""MinHash near-duplicate deduplication: accuracy against exact ground truth at several thresholds, per-core
throughput against plain datasketch and rensa loops, and time / peak memory as the corpus grows.

    .venv/bin/python benchmarks/bench_dedup.py            # full run (about 10 min on 2 cores)
    .venv/bin/python benchmarks/bench_dedup.py --quick    # 300-page WARC, scales 1x/2x/4x (about 1 min)

The corpus: the texts that the project's own extractor (``filters.warc.iter_records`` +
``filters.extract.HtmlExtractor(main_content=True)``) gets from the benchmark WARC (``build_corpus.py``: real
Debian documentation pages in ~25 languages), those of >= 50 words, plus planted near-duplicates: seeded
edited copies (words replaced, deleted, inserted at a rate chosen for a target Jaccard of 0.5-1.0), some of
them copied again (chains), all shuffled. Larger corpora (Nx) add N-1 "replicas": every base text rewritten
heavily (Jaccard to it ~0.15-0.35, so a distinct document to dedup), then near-duplicates planted on those the
same way.

1. Accuracy at each threshold (default 0.5, 0.7, 0.8; bands x rows derived from it): ground truth is the
   EXACT Jaccard of the 5-gram shingle sets (``filters.dedup.shingle_set``) of every pair of documents that
   share at least one shingle (an inverted index: a sparse doc x shingle matrix times its transpose counts the
   shared shingles of exactly those pairs; the pairs above 0.25 are recomputed with ``filters.dedup.jaccard``
   as a cross-check). Truly removed = every document of a connected component of {J >= T} but its first. The
   project runs with ``pipeline.tools.dedup_files.minhash_dedup_files`` (kept files) and with the same stage
   run by hand, to read the ``minhash_dedup_cluster`` column (cluster membership).
2. Throughput on one CPU: the project's stage (all phases, ``LocalExecutor``) vs datasketch and rensa loops
   (MinHash + LSH + union-find over the same shingles and bands, no verification).
3. Scaling: each size and side in its own subprocess (peak RSS per size), ``docs_per_partition`` = 2000.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FILES_PER_SHARD = 2_000  # as pipeline.tools.dedup_files.FILES_PER_SHARD


from dedup_corpus import (  # noqa: E402
    DEDUP_WORK,
    MIN_WORDS,
    WORK,
    base_documents,
    current_rss_mb,
    ground_truth,
    log,
    make_corpus,
    peak_rss_mb,
    write_corpus,
)
from dedup_sides import (  # noqa: E402
    LIBRARIES,
    STAGE_NAME,
    lsh_shape,
    phase_meter,
    prepare_run,
    read_clusters,
    run_stage,
    timed,
    vmhwm_mb,
)

from pipeline.tools.dedup_files import read_file_text  # noqa: E402

# -- accuracy -----------------------------------------------------------------------------------------------------


def score(truth: dict, cluster_of: np.ndarray, removed: np.ndarray, threshold: float, margin: float) -> dict:
    """Removed-set precision/recall and pair recall for predicted clusters (one cluster key per document)."""
    tr = truth["removed"]
    hit = int((removed & tr).sum())
    precision = hit / removed.sum() if removed.sum() else 1.0
    recall = hit / tr.sum() if tr.sum() else 1.0
    u, v, sim = truth["u"], truth["v"], truth["sim"]
    together = cluster_of[u] == cluster_of[v]
    bins = {}
    edges = [threshold, threshold + margin, 0.9, 0.95, 1.0 + 1e-9]
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (sim >= lo) & (sim < hi)
        bins[f"[{lo:.2f},{min(hi, 1.0):.2f}]"] = (int(together[sel].sum()), int(sel.sum()))
    high = sim >= threshold + margin
    low = sim < threshold
    return {
        "precision": precision,
        "recall": recall,
        "removed": int(removed.sum()),
        "true_removed": int(tr.sum()),
        "false_removed": int((removed & ~tr).sum()),
        "missed": int((tr & ~removed).sum()),
        "pair_recall": together[high].mean() if high.any() else 1.0,
        "pairs_high": int(high.sum()),
        "pair_bins": bins,
        "merged_below_threshold": int(together[low].sum()),
    }


def accuracy(paths: list[Path], kinds: list[str], threshold: float, margin: float, files_per_shard: int) -> dict:
    """The project (verification on and off) and the library loops scored against exact ground truth."""
    from filters.dedup import candidate_probability
    from pipeline.tools.dedup_files import minhash_dedup_files

    texts = [read_file_text(p) for p in paths]
    n = len(texts)
    log(f"ground truth at T = {threshold}: exact Jaccard over {n} documents")
    truth = ground_truth(texts, threshold)
    sim = truth["sim"]
    log(
        f"  {truth['pairs_evaluated']} pairs share a shingle, {(sim >= threshold).sum()} have J >= {threshold} "
        f"({truth['seconds']:.1f}s)"
    )
    results, cluster_arrays = {}, {}
    index = {p.name: i for i, p in enumerate(paths)}
    for verify in (True, False):
        with tempfile.TemporaryDirectory(dir=DEDUP_WORK) as tmp:
            t0 = time.perf_counter()
            kept_public = {
                p.name for p in minhash_dedup_files(paths, Path(tmp) / "out", threshold=threshold, verify=verify)
            }
            public_s = time.perf_counter() - t0
            run, shards = prepare_run(paths, Path(tmp) / "run", files_per_shard)
            seconds, _ = run_stage(run, shards, threshold=threshold, verify=verify)
            clusters = read_clusters(run, shards)
        cluster_of = np.array([index[clusters[p.name][0]] for p in paths])
        removed = np.array([clusters[p.name][1] for p in paths])
        kept_ours = {p.name for p in paths if not clusters[p.name][1]}
        cluster_arrays[verify] = cluster_of
        r = score(truth, cluster_of, removed, threshold, margin)
        r.update(public_same_kept=kept_public == kept_ours, public_s=public_s, stage_s=seconds)
        results["verify" if verify else "no-verify"] = r
        log(
            f"  verify={verify}: removed {r['removed']} (true {r['true_removed']}), P={r['precision']:.4f} "
            f"R={r['recall']:.4f} pair recall={r['pair_recall']:.4f}"
        )
    for name, dedup in available_libraries().items():
        roots = dedup(texts, threshold)
        results[name] = score(truth, roots, roots != np.arange(n), threshold, margin)
    bands, rows = lsh_shape(threshold)
    hi = sim[sim >= 0.5]
    return {
        "truth": truth,
        "results": results,
        "n": n,
        "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "sim_hist": np.histogram(hi, bins=[0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0001])[0].tolist(),
        "lsh": (bands, rows),
        "lsh_probability": {
            f"{s:.2f}": candidate_probability(s, bands, rows) for s in (threshold, threshold + margin, threshold - 0.1)
        },
    }


def available_libraries() -> dict:
    """The library loops whose package is installed (rensa is not a project dependency: pip install rensa)."""
    import importlib.util

    missing = [name for name in LIBRARIES if importlib.util.find_spec(name) is None]
    for name in missing:
        log(f"{name} is not installed (pip install {name}): its rows are left out")
    return {name: fn for name, fn in LIBRARIES.items() if name not in missing}


# -- throughput ---------------------------------------------------------------------------------------------------


def throughput(paths: list[Path], threshold: float, repeats: int, files_per_shard: int) -> dict:
    texts = [read_file_text(p) for p in paths]
    libraries = available_libraries()
    rows = {"ours (verify)": [], "ours (no verify)": [], **{name: [] for name in libraries}}
    with tempfile.TemporaryDirectory(dir=DEDUP_WORK) as tmp:
        t0 = time.perf_counter()
        run, shards = prepare_run(paths, Path(tmp) / "run", files_per_shard)
        prep_s = time.perf_counter() - t0
        for i in range(repeats):
            rows["ours (verify)"].append(run_stage(run, shards, threshold=threshold, verify=True))
            rows["ours (no verify)"].append(run_stage(run, shards, threshold=threshold, verify=False))
            for name, dedup in libraries.items():
                rows[name].append(timed(dedup, texts, threshold))
            log(
                f"throughput repeat {i + 1}/{repeats}: "
                + ", ".join(f"{k} {v[-1][0]:.1f}s ({v[-1][1]:.1f}s cpu)" for k, v in rows.items())
            )
    return {"runs": rows, "prep_s": prep_s, "n": len(paths)}


def profile_ours(paths: list[Path], threshold: float, top: int, files_per_shard: int) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    with tempfile.TemporaryDirectory(dir=DEDUP_WORK) as tmp:
        run, shards = prepare_run(paths, Path(tmp) / "run", files_per_shard)
        run_stage(run, shards, threshold=threshold, verify=True, profile=prof)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(top)
    return "\n".join(line for line in buf.getvalue().splitlines() if line.strip())


# -- scaling (subprocess per size and side) -----------------------------------------------------------------------


def worker(side: str, folder: Path, threshold: float, docs_per_partition: int, files_per_shard: int) -> dict:
    """One measurement in a fresh process; the parent reads the JSON it prints."""
    import datasketch  # noqa: F401
    import pyarrow  # noqa: F401 - imported before the baseline so that all sides start alike

    import pipeline.stages.dedup.minhash  # noqa: F401

    baseline = current_rss_mb()
    paths = sorted(folder.glob("*.txt"))
    t0, c0 = time.perf_counter(), time.process_time()
    if side == "ours":
        run, shards = prepare_run(paths, folder.with_name(folder.name + "-run"), files_per_shard)
        prep_s = time.perf_counter() - t0
        prep_peak = vmhwm_mb()
        meter = phase_meter()
        stage_s, stage_cpu_s = run_stage(
            run, shards, threshold=threshold, verify=True, docs_per_partition=docs_per_partition, executor=meter
        )
        import pyarrow.parquet as pq

        removed = sum(pq.read_metadata(run.rejected(STAGE_NAME, s.id)).num_rows for s in shards)
        clusters = json.loads(Path(run.path(STAGE_NAME, "clusters.json")).read_text())
        shutil.rmtree(folder.with_name(folder.name + "-run"), ignore_errors=True)
        extra = {
            "prep_s": prep_s,
            "stage_s": stage_s,
            "stage_cpu_s": stage_cpu_s,
            "shards": len(shards),
            "prep_peak_mb": prep_peak,
            "phases": meter.phases,
            "candidate_pairs": clusters.get("candidate_pairs"),
            "verified_pairs": clusters.get("verified_pairs"),
        }
    else:
        roots = LIBRARIES[side]((read_file_text(p) for p in paths), threshold)
        removed = int((roots != np.arange(len(roots))).sum())
        extra = {}
    seconds, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    peak = peak_rss_mb()
    # ours resets VmHWM before each task (per-phase peaks): its overall peak is the largest of those
    top = max(
        [peak["vmhwm_mb"], peak["ru_maxrss_children_mb"], extra.get("prep_peak_mb", 0.0)]
        + [ph["peak_mb"] for ph in extra.get("phases", {}).values()]
    )
    return {
        "side": side,
        "docs": len(paths),
        "seconds": seconds,
        "cpu_s": cpu_s,
        "removed": removed,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": top,
        **peak,
        **extra,
    }


def run_worker(side: str, folder: Path, args) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        str(folder),
        "--threshold",
        str(args.threshold),
        "--docs-per-partition",
        str(args.docs_per_partition),
        "--files-per-shard",
        str(args.files_per_shard),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{side} worker on {folder} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------------------------


def print_accuracy(args, info: dict, accs: dict) -> None:
    first = next(iter(accs.values()))
    kinds = ", ".join(f"{k} {v}" for k, v in first["kinds"].items())
    print(
        f"\nCorpus: {info['warc']} -> {info['base']} base documents (>= {MIN_WORDS} words, project extractor), "
        f"{first['n']} documents with planted near-duplicates ({kinds}); "
        f"{info['mb']:.1f} MB of text; seed {args.seed}; CPU {args.cpu}"
    )
    labels = ["0.5", "0.6", "0.7", "0.8", "0.85", "0.9", "0.95", "1"]
    print("  pairs by J: " + ", ".join(f"{lo}-{hi}: {c}" for lo, hi, c in zip(labels, labels[1:], first["sim_hist"])))
    m = args.margin
    for T, acc in accs.items():
        truth = acc["truth"]
        bands, rows = acc["lsh"]
        print(
            f"\n1. Accuracy at threshold T = {T}: {bands} bands x {rows} rows (derived), candidate probability "
            + ", ".join(f"J={k}: {v:.3f}" for k, v in acc["lsh_probability"].items())
        )
        print(
            f"   ground truth: exact Jaccard for all {truth['pairs_evaluated']} pairs sharing a shingle "
            f"({truth['checked_with_jaccard']} rechecked with filters.dedup.jaccard), {truth['seconds']:.1f}s; "
            f"{(truth['sim'] >= T).sum()} pairs with J >= {T}, {truth['removed'].sum()} documents truly removed; "
            f"pair recall: J >= {T + m:.2f}, pairs in the same predicted cluster"
        )
        print(
            f"{'':<13}{'removed':>8}{'true':>7}{'false+':>8}{'missed':>8}{'precision':>11}{'recall':>8}"
            f"{'pair recall':>13}{'J<T merged':>12}  pair recall by J bin (hit/total)"
        )
        for name, r in acc["results"].items():
            bins = " ".join(f"{k} {h}/{t}" for k, (h, t) in r["pair_bins"].items())
            print(
                f"{name:<13}{r['removed']:>8}{r['true_removed']:>7}{r['false_removed']:>8}{r['missed']:>8}"
                f"{r['precision']:>11.4f}{r['recall']:>8.4f}{r['pair_recall']:>13.4f}"
                f"{r['merged_below_threshold']:>12}  {bins}"
            )
        same = all(acc["results"][k]["public_same_kept"] for k in ("verify", "no-verify"))
        print(f"   minhash_dedup_files() kept the same files as the stage run by hand: {same}")
        v = acc["results"]["verify"]
        for text, val, goal in (
            (f"pair recall >= 0.95 for J >= {T + m:.2f} (verify on)", v["pair_recall"], 0.95),
            ("removed-set precision >= 0.99 (verify on)", v["precision"], 0.99),
        ):
            print(f"GOAL {'PASS' if val >= goal else 'FAIL'} at T = {T}: {text}: {val:.4f}")


def print_throughput(args, thr: dict) -> None:
    n = thr["n"]
    wall = {k: float(np.median([w for w, _ in v])) for k, v in thr["runs"].items()}
    cpu = {k: float(np.median([c for _, c in v])) for k, v in thr["runs"].items()}
    print(
        f"\n2. Throughput on one core (CPU {args.cpu}), {n} documents, T = {args.threshold}, median of "
        f"{args.repeats} repeat(s); ours = stage.run_global with LocalExecutor (all phases incl. writing "
        f"kept/rejected Parquet; writing the input Parquet, {thr['prep_s']:.1f}s, not included); libraries = "
        "texts in memory -> clusters, no verification. docs/cpu-s = documents per CPU-second of the process "
        "(what one core does when it is not shared); ratios: wall / CPU"
    )
    anchors = [k for k in ("datasketch", "rensa") if k in wall]
    print(
        f"{'':<18}{'wall s':>8}{'best':>7}{'cpu s':>8}{'docs/s':>9}{'docs/cpu-s':>12}"
        + "".join(f"{'vs ' + a:>20}" for a in anchors)
    )
    for k, v in thr["runs"].items():
        ratios = "".join(f"{wall[a] / wall[k]:>12.2f}x /{cpu[a] / cpu[k]:>5.2f}x" for a in anchors)
        print(
            f"{k:<18}{wall[k]:>8.2f}{min(w for w, _ in v):>7.2f}{cpu[k]:>8.2f}{n / wall[k]:>9.1f}"
            f"{n / cpu[k]:>12.1f}{ratios}"
        )


def print_scaling(args, scale: list[dict]) -> None:
    print(
        f"\n3. Scaling (each row a fresh subprocess on CPU {args.cpu}; ours: verify on, docs_per_partition="
        f"{args.docs_per_partition}, {args.files_per_shard} files per shard; seconds include reading the text "
        f"files, ours also writing the input Parquet; peak RSS = max(VmHWM, children's ru_maxrss): "
        f"ru_maxrss of self carries the parent's RSS over fork+exec; base MB = RSS after imports)"
    )
    print(
        f"{'side':<11}{'size':>5}{'docs':>8}{'wall s':>8}{'cpu s':>8}{'docs/s':>8}{'docs/cpu-s':>11}"
        f"{'ours/this':>15}{'peak RSS MB':>13}{'base MB':>9}{'removed':>9}{'stage s':>9}{'shards':>7}"
        f"{'cand pairs':>11}{'verified':>10}"
    )
    ours = {r["scale"]: r for r in scale if r["side"] == "ours"}
    for r in scale:
        o = ours[r["scale"]]
        ratio = f"{r['seconds'] / o['seconds']:.2f}x /{r['cpu_s'] / o['cpu_s']:.2f}x"
        print(
            f"{r['side']:<11}{str(r['scale']) + 'x':>5}{r['docs']:>8}{r['seconds']:>8.1f}{r['cpu_s']:>8.1f}"
            f"{r['docs'] / r['seconds']:>8.1f}{r['docs'] / r['cpu_s']:>11.1f}{ratio:>15}"
            f"{r['peak_rss_mb']:>13.0f}{r['baseline_rss_mb']:>9.0f}{r['removed']:>9}"
            + (
                f"{r['stage_s']:>9.1f}{r['shards']:>7}{r['candidate_pairs']:>11}{r['verified_pairs']:>10}"
                if r["side"] == "ours"
                else ""
            )
        )
    names = list(ours[max(ours)]["phases"])
    print(
        "\nours per phase in the scaling runs: CPU seconds / peak RSS MB of its largest task + the most a task "
        "added to the RSS it started from (VmHWM reset before each task) / tasks; 'input' = reading the files and "
        "writing the input Parquet (wall s / peak MB); the stage's CPU ms per document"
    )
    print(f"{'size':>5} {'input':>15}" + "".join(f" {n:>18}" for n in names) + f"{'cpu ms/doc':>12}")
    for r in ours.values():
        cells = [
            f"{r['phases'][n]['cpu_s']:.1f}/{r['phases'][n]['peak_mb']:.0f}+{r['phases'][n]['task_mb']:.0f}"
            f"/{r['phases'][n]['tasks']}"
            if n in r["phases"]
            else "-"
            for n in names
        ]
        print(
            f"{str(r['scale']) + 'x':>5} {r['prep_s']:>7.1f}/{r['prep_peak_mb']:<7.0f}"
            + "".join(f" {c:>18}" for c in cells)
            + f"{r['stage_cpu_s'] / r['docs'] * 1e3:>12.3f}"
        )


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300-page WARC, scales 1,2,4, one repeat")
    ap.add_argument("--threshold", type=float, default=0.8, help="threshold of the throughput and scaling runs")
    ap.add_argument("--thresholds", default="0.5,0.7,0.8", help="thresholds of the accuracy runs")
    ap.add_argument("--margin", type=float, default=0.05, help="pair recall is measured for J >= threshold + margin")
    ap.add_argument("--scales", default=None, help="comma-separated corpus multiples (default 1,4,16; quick 1,2,4)")
    ap.add_argument("--repeats", type=int, default=None, help="throughput repeats (default 3; quick 1)")
    ap.add_argument("--share", type=float, default=0.3, help="share of documents that get planted copies")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--cpu", type=int, default=0, help="pin everything to this CPU")
    ap.add_argument(
        "--docs-per-partition",
        type=int,
        default=2000,
        help="MinHashOptions.docs_per_partition "
        "in the scaling runs (the accuracy and throughput runs use the default, 200000)",
    )
    ap.add_argument("--files-per-shard", type=int, default=FILES_PER_SHARD)
    ap.add_argument("--parts", default="accuracy,throughput,scaling", help="which parts to run (default all)")
    ap.add_argument("--sides", default="ours,datasketch,rensa", help="sides of the scaling runs (ours always)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also cProfile ours once, print top N")
    ap.add_argument("--json", type=Path, default=DEDUP_WORK / "last-run.json")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "FOLDER"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def scaling(base: list[str], scales: list[int], tag: str, vocab: list[str], args) -> list[dict]:
    rows = []
    sides = ["ours", *(s for s in available_libraries() if s in args.sides.split(","))]
    for k in scales:
        folder = DEDUP_WORK / f"corpus-{tag}-{k}x"
        if k != 1:
            write_corpus(make_corpus(base, k, args.seed, vocab, args.share), folder)
        for side in sides:
            r = run_worker(side, folder, args)
            r["scale"] = k
            rows.append(r)
            log(f"scale {k}x {side}: {r['docs']} docs, {r['seconds']:.1f}s, peak {r['peak_rss_mb']:.0f} MB")
        if k != 1:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        side, folder = args.worker
        print(json.dumps(worker(side, Path(folder), args.threshold, args.docs_per_partition, args.files_per_shard)))
        return 0
    scales = [int(s) for s in (args.scales or ("1,2,4" if args.quick else "1,4,16")).split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    args.repeats = args.repeats or (1 if args.quick else 3)
    os.sched_setaffinity(0, {args.cpu})  # inherited by the scaling subprocesses
    started = time.perf_counter()

    import build_corpus

    max_pages = 300 if args.quick else 0
    warc = WORK / build_corpus.default_name(build_corpus.DEFAULT_MAX_MB, max_pages)
    manifest = build_corpus.build(warc, max_pages=max_pages)
    base = base_documents(warc, manifest)
    vocab = [w for t in base for w in t.split()]
    vocab = [vocab[i] for i in np.random.default_rng(args.seed).choice(len(vocab), 200_000).tolist()]
    tag = hashlib.sha1(f"{manifest['sha256']}-{args.seed}-{args.share}".encode()).hexdigest()[:10]
    log(f"{len(base)} base documents; building the 1x corpus")
    docs = make_corpus(base, 1, args.seed, vocab, args.share)
    paths = write_corpus(docs, DEDUP_WORK / f"corpus-{tag}-1x")
    info = {"warc": warc.name, "base": len(base), "mb": sum(len(t.encode()) for t, _ in docs) / 1e6}

    kinds = [k for _, k in docs]
    parts = args.parts.split(",")
    accs = {t: accuracy(paths, kinds, t, args.margin, args.files_per_shard) for t in thresholds if "accuracy" in parts}
    log(f"accuracy done at {time.perf_counter() - started:.0f}s; throughput")
    thr = throughput(paths, args.threshold, args.repeats, args.files_per_shard) if "throughput" in parts else None
    log(f"throughput done at {time.perf_counter() - started:.0f}s; scaling {scales}")
    scale_rows = scaling(base, scales, tag, vocab, args) if "scaling" in parts else []
    prof = profile_ours(paths, args.threshold, args.profile, args.files_per_shard) if args.profile else None

    if accs:
        print_accuracy(args, info, accs)
    if thr:
        print_throughput(args, thr)
    if scale_rows:
        print_scaling(args, scale_rows)
    if prof:
        print(f"\ncProfile of ours (verify on, {len(paths)} documents, sorted by cumulative time):\n{prof}")
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        slim = {
            t: {**{k: v for k, v in a.items() if k != "truth"}, "truth": _scalars(a["truth"])} for t, a in accs.items()
        }
        record = {"args": {k: str(v) for k, v in vars(args).items()}, "corpus": info, "accuracy": slim}
        record.update(throughput=thr, scaling=scale_rows)
        args.json.write_text(json.dumps(record, indent=1, default=float))
    return 0


def _scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if not isinstance(v, np.ndarray)}


if __name__ == "__main__":
    sys.exit(main())
