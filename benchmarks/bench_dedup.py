#!/usr/bin/env python3
"""MinHash near-duplicate deduplication: accuracy against exact ground truth, per-core throughput against a
plain datasketch loop, and time / peak memory as the corpus grows.

    .venv/bin/python benchmarks/bench_dedup.py            # full run (about 10-15 min on 2 cores)
    .venv/bin/python benchmarks/bench_dedup.py --quick    # 300-page WARC, scales 1x/2x/4x (about 1 min)

The corpus: the texts that the project's own extractor (``filters.warc.iter_records`` +
``filters.extract.HtmlExtractor(main_content=True)``) gets from the benchmark WARC (``build_corpus.py``: real
Debian documentation pages in ~25 languages), those of >= 50 words, plus planted near-duplicates: seeded
edited copies (words replaced, deleted, inserted at a rate chosen for a target Jaccard of 0.5-1.0), some of
them copied again (chains), all shuffled. Larger corpora (Nx) add N-1 "replicas": every base text rewritten
heavily (Jaccard to it ~0.15-0.35, so a distinct document to dedup), then near-duplicates planted on those the
same way.

1. Accuracy: ground truth is the EXACT Jaccard of the 5-gram shingle sets (``filters.dedup.shingle_set``) of
   every pair of documents that share at least one shingle (an inverted index: a sparse doc x shingle matrix
   times its transpose counts the shared shingles of exactly those pairs; the pairs above 0.25 are recomputed
   with ``filters.dedup.jaccard`` as a cross-check). Truly removed = every document of a connected component of
   {J >= T} but its first. The project runs with ``pipeline.tools.dedup_files.minhash_dedup_files`` (kept files) and
   with the same stage run by hand, to read the ``minhash_dedup_cluster`` column (cluster membership).
2. Throughput on one CPU: the project's stage (all phases, ``LocalExecutor``) vs a datasketch MinHash +
   MinHashLSH + union-find loop over the same shingles.
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
    STAGE_NAME,
    datasketch_dedup,
    phase_meter,
    prepare_run,
    read_clusters,
    run_stage,
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
    from filters.dedup import candidate_probability
    from pipeline.tools.dedup_files import minhash_dedup_files

    texts = [read_file_text(p) for p in paths]
    n = len(texts)
    log(f"ground truth: exact Jaccard over {n} documents")
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
            seconds = run_stage(run, shards, threshold=threshold, verify=verify)
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
    roots, _ = datasketch_dedup(texts)
    r = score(truth, roots, roots != np.arange(n), threshold, margin)
    r["same_clusters_as_ours_no_verify"] = _same_partition(roots, cluster_arrays[False])
    results["datasketch"] = r
    # the planted copies' spread, and what LSH alone can reach
    hi = sim[sim >= 0.5]
    return {
        "truth": truth,
        "results": results,
        "n": n,
        "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "sim_hist": np.histogram(hi, bins=[0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0001])[0].tolist(),
        "lsh_probability": {f"{s:.2f}": candidate_probability(s, 14, 8) for s in (0.8, 0.85, 0.9, 0.95)},
    }


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


# -- throughput ---------------------------------------------------------------------------------------------------


def throughput(paths: list[Path], threshold: float, repeats: int, files_per_shard: int) -> dict:
    texts = [read_file_text(p) for p in paths]
    rows = {"ours (verify)": [], "ours (no verify)": [], "datasketch": []}
    with tempfile.TemporaryDirectory(dir=DEDUP_WORK) as tmp:
        t0 = time.perf_counter()
        run, shards = prepare_run(paths, Path(tmp) / "run", files_per_shard)
        prep_s = time.perf_counter() - t0
        for i in range(repeats):
            rows["ours (verify)"].append(run_stage(run, shards, threshold=threshold, verify=True))
            rows["ours (no verify)"].append(run_stage(run, shards, threshold=threshold, verify=False))
            t0 = time.perf_counter()
            datasketch_dedup(texts)
            rows["datasketch"].append(time.perf_counter() - t0)
            log(f"throughput repeat {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in rows.items()))
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
    import pyarrow  # noqa: F401 - imported before the baseline so that both sides start alike

    import pipeline.stages.dedup.minhash  # noqa: F401

    baseline = current_rss_mb()
    paths = sorted(folder.glob("*.txt"))
    t0 = time.perf_counter()
    if side == "ours":
        run, shards = prepare_run(paths, folder.with_name(folder.name + "-run"), files_per_shard)
        prep_s = time.perf_counter() - t0
        prep_peak = vmhwm_mb()
        meter = phase_meter()
        stage_s = run_stage(
            run, shards, threshold=threshold, verify=True, docs_per_partition=docs_per_partition, executor=meter
        )
        import pyarrow.parquet as pq

        removed = sum(pq.read_metadata(run.rejected(STAGE_NAME, s.id)).num_rows for s in shards)
        clusters = json.loads(Path(run.path(STAGE_NAME, "clusters.json")).read_text())
        shutil.rmtree(folder.with_name(folder.name + "-run"), ignore_errors=True)
        extra = {
            "prep_s": prep_s,
            "stage_s": stage_s,
            "shards": len(shards),
            "prep_peak_mb": prep_peak,
            "phases": meter.phases,
            "candidate_pairs": clusters.get("candidate_pairs"),
            "verified_pairs": clusters.get("verified_pairs"),
        }
    else:
        roots, _ = datasketch_dedup(read_file_text(p) for p in paths)
        removed = int((roots != np.arange(len(roots))).sum())
        extra = {}
    seconds = time.perf_counter() - t0
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


def print_report(args, info: dict, acc: dict, thr: dict, scale: list[dict], prof: str | None) -> None:
    T, m = args.threshold, args.margin
    truth = acc["truth"]
    kinds = ", ".join(f"{k} {v}" for k, v in acc["kinds"].items())
    print(
        f"\nCorpus: {info['warc']} -> {info['base']} base documents (>= {MIN_WORDS} words, project extractor), "
        f"{acc['n']} documents with planted near-duplicates ({kinds}); "
        f"{info['mb']:.1f} MB of text; seed {args.seed}; CPU {args.cpu}"
    )
    print(
        f"Ground truth: exact Jaccard of 5-gram shingle sets for all {truth['pairs_evaluated']} pairs sharing a "
        f"shingle ({truth['checked_with_jaccard']} rechecked with filters.dedup.jaccard), {truth['seconds']:.1f}s; "
        f"{(truth['sim'] >= T).sum()} pairs with J >= {T}, {truth['removed'].sum()} documents truly removed"
    )
    print(
        "  pairs by J: "
        + ", ".join(
            f"{lo}-{hi}: {c}"
            for lo, hi, c in zip(
                ["0.5", "0.6", "0.7", "0.8", "0.85", "0.9", "0.95"],
                ["0.6", "0.7", "0.8", "0.85", "0.9", "0.95", "1"],
                acc["sim_hist"],
            )
        )
    )
    print(
        "  LSH (14 bands x 8 rows) candidate probability: "
        + ", ".join(f"J={k}: {v:.3f}" for k, v in acc["lsh_probability"].items())
    )

    print(f"\n1. Accuracy at threshold T = {T} (pair recall: J >= {T + m:.2f}; pairs in the same predicted cluster)")
    print(
        f"{'':<22}{'removed':>8}{'true':>7}{'false+':>8}{'missed':>8}{'precision':>11}{'recall':>8}"
        f"{'pair recall':>13}  pair recall by J bin (hit/total)"
    )
    for name, r in acc["results"].items():
        bins = " ".join(f"{k} {h}/{t}" for k, (h, t) in r["pair_bins"].items())
        print(
            f"{name:<22}{r['removed']:>8}{r['true_removed']:>7}{r['false_removed']:>8}{r['missed']:>8}"
            f"{r['precision']:>11.4f}{r['recall']:>8.4f}{r['pair_recall']:>13.4f}  {bins}"
        )
    for name in ("verify", "no-verify"):
        r = acc["results"][name]
        print(
            f"  ours {name}: minhash_dedup_files() kept the same files as the stage run by hand: "
            f"{r['public_same_kept']}; pairs with J < {T} merged into one cluster: {r['merged_below_threshold']}"
        )
    print(
        "  datasketch loop vs ours without verification: same shingles, different hash functions (ours hashes "
        "words once and mixes them), so LSH collides on different pairs; identical clusters: "
        f"{acc['results']['datasketch']['same_clusters_as_ours_no_verify']}"
    )
    v = acc["results"]["verify"]
    goals = [
        (f"pair recall >= 0.95 for J >= {T + m:.2f} (verify on)", v["pair_recall"] >= 0.95, v["pair_recall"]),
        ("removed-set precision >= 0.99 (verify on)", v["precision"] >= 0.99, v["precision"]),
    ]
    for text, ok, val in goals:
        print(f"GOAL {'PASS' if ok else 'FAIL'}: {text}: {val:.4f}")

    n = thr["n"]
    med = {k: float(np.median(v)) for k, v in thr["runs"].items()}
    print(
        f"\n2. Throughput on one core (CPU {args.cpu}), {n} documents, median of {args.repeats} repeat(s); "
        f"ours = stage.run_global with LocalExecutor (all phases incl. writing kept/rejected Parquet; writing "
        f"the input Parquet, {thr['prep_s']:.1f}s, not included); datasketch = texts in memory -> clusters"
    )
    print(f"{'':<20}{'median s':>10}{'best s':>9}{'docs/s':>9}{'vs datasketch':>15}")
    for k, v in thr["runs"].items():
        print(f"{k:<20}{med[k]:>10.2f}{min(v):>9.2f}{n / med[k]:>9.1f}{med['datasketch'] / med[k]:>14.2f}x")
    print(f"ratio ours (verify) / datasketch, documents/s per core: {med['datasketch'] / med['ours (verify)']:.2f}x")

    print(
        f"\n3. Scaling (each row a fresh subprocess on CPU {args.cpu}; ours: verify on, docs_per_partition="
        f"{args.docs_per_partition}, {args.files_per_shard} files per shard; seconds include reading the text "
        f"files, ours also writing the input Parquet; peak RSS = max(VmHWM, children's ru_maxrss): "
        f"ru_maxrss of self carries the parent's RSS over fork+exec; base MB = RSS after imports)"
    )
    print(
        f"{'side':<11}{'size':>5}{'docs':>8}{'seconds':>9}{'docs/s':>8}{'peak RSS MB':>13}{'base MB':>9}"
        f"{'removed':>9}{'stage s':>9}{'shards':>7}{'cand pairs':>11}{'verified':>10}"
    )
    for r in scale:
        ours = r["side"] == "ours"
        size = f"{r['scale']}x"
        print(
            f"{r['side']:<11}{size:>5}{r['docs']:>8}{r['seconds']:>9.1f}{r['docs'] / r['seconds']:>8.1f}"
            f"{r['peak_rss_mb']:>13.0f}{r['baseline_rss_mb']:>9.0f}{r['removed']:>9}"
            + (
                f"{r['stage_s']:>9.1f}{r['shards']:>7}{r['candidate_pairs']:>11}{r['verified_pairs']:>10}"
                if ours
                else ""
            )
        )
    ours = [r for r in scale if r["side"] == "ours"]
    if ours:
        names = list(ours[-1]["phases"])
        print(
            "\nours per phase in the scaling runs: seconds / peak RSS MB of its largest task (VmHWM reset before "
            "each task; 'input' = reading the files and writing the input Parquet) / tasks"
        )
        print(f"{'size':>5} {'input':>15}" + "".join(f" {n:>17}" for n in names))
        for r in ours:
            cells = [
                f"{r['phases'][n]['s']:.1f}/{r['phases'][n]['peak_mb']:.0f}/{r['phases'][n]['tasks']}"
                if n in r["phases"]
                else "-"
                for n in names
            ]
            print(
                f"{str(r['scale']) + 'x':>5} {r['prep_s']:>7.1f}/{r['prep_peak_mb']:<7.0f}"
                + "".join(f" {c:>17}" for c in cells)
            )
    if prof:
        print(f"\ncProfile of ours (verify on, {n} documents, sorted by cumulative time):\n{prof}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300-page WARC, scales 1,2,4, one repeat")
    ap.add_argument("--threshold", type=float, default=0.8)
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
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also cProfile ours once, print top N")
    ap.add_argument("--json", type=Path, default=DEDUP_WORK / "last-run.json")
    ap.add_argument("--worker", nargs=2, metavar=("SIDE", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(
            json.dumps(
                worker(
                    args.worker[0], Path(args.worker[1]), args.threshold, args.docs_per_partition, args.files_per_shard
                )
            )
        )
        return 0
    scales = [int(s) for s in (args.scales or ("1,2,4" if args.quick else "1,4,16")).split(",")]
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

    acc = accuracy(paths, [k for _, k in docs], args.threshold, args.margin, args.files_per_shard)
    log(f"accuracy done at {time.perf_counter() - started:.0f}s; throughput")
    thr = throughput(paths, args.threshold, args.repeats, args.files_per_shard)
    log(f"throughput done at {time.perf_counter() - started:.0f}s; scaling {scales}")

    scale_rows = []
    for k in scales:
        folder = DEDUP_WORK / f"corpus-{tag}-1x" if k == 1 else DEDUP_WORK / f"corpus-{tag}-{k}x"
        if k != 1:
            write_corpus(make_corpus(base, k, args.seed, vocab, args.share), folder)
        for side in ("ours", "datasketch"):
            r = run_worker(side, folder, args)
            r["scale"] = k
            scale_rows.append(r)
            log(f"scale {k}x {side}: {r['docs']} docs, {r['seconds']:.1f}s, peak {r['peak_rss_mb']:.0f} MB")
        if k != 1:
            shutil.rmtree(folder, ignore_errors=True)
    prof = profile_ours(paths, args.threshold, args.profile, args.files_per_shard) if args.profile else None

    print_report(args, info, acc, thr, scale_rows, prof)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        slim = {k: v for k, v in acc.items() if k != "truth"}
        slim["truth"] = {k: v for k, v in acc["truth"].items() if not isinstance(v, np.ndarray)}
        args.json.write_text(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "corpus": info,
                    "accuracy": slim,
                    "throughput": thr,
                    "scaling": scale_rows,
                },
                indent=1,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
