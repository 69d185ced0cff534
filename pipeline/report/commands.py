"""``refinery stats``, ``refinery report``, ``refinery sample`` and ``refinery scaling``: reading a run (and a
sweep's results) back, as a table, an HTML page, sampled documents, or a scaling-law fit."""

from __future__ import annotations

import argparse
import json
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``stats``, ``report``, ``sample`` and ``scaling``."""
    p = sub.add_parser("stats", help="print the funnel of a run: documents and bytes per stage, filter, reason")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    p.add_argument("--json", action="store_true", help="print the merged statistics as JSON")
    p.set_defaults(func=stats_command)

    p = sub.add_parser("report", help="write <run>/report.html: funnel, score histograms, samples, training curves")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    p.add_argument("--compare", metavar="RUN_B", help="a second run: funnels side by side")
    p.add_argument(
        "--training", action="append", default=[], metavar="DIR", help="a training out_dir to include (repeatable)"
    )
    p.add_argument(
        "--output", help="where to write the HTML (default: <run>/report.html; with --compare <run>/compare-<B>.html)"
    )
    p.set_defaults(func=report_command)

    p = sub.add_parser("sample", help="print documents dropped for one reason, or the members of a dedup cluster")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--reason", help="a drop reason as `refinery stats` prints it")
    which.add_argument("--cluster", help="a dedup cluster id (its surviving document's id): members side by side")
    p.add_argument("-n", type=int, default=5, help="how many documents (default 5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--chars", type=int, default=800, help="characters of text to show per document (default 800)")
    p.set_defaults(func=sample_command)

    _register_scaling(sub)


def _register_scaling(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scaling", help="fit a scaling law to a sweep's results; predict compute-optimal N and D")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("fit", help="fit L = E + A/N^alpha + B/D^beta and IsoFLOP profiles; write JSON and HTML")
    s.add_argument("results", help="a sweep's results.jsonl or CSV, or the directory holding it")
    s.add_argument("--loss", default="final_val_loss", help="loss column (default final_val_loss)")
    s.add_argument("--params", default="params", help="N column (default params: non-embedding; or params_total)")
    s.add_argument("--best", action="store_true", help="of runs with equal N and D (an lr grid), keep the lowest loss")
    s.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the uncertainty (default 200)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    s.add_argument("--tolerance", type=float, default=0.1, help="IsoFLOP: relative FLOPs spread of a budget (0.1)")
    s.add_argument("--html", default="", help="plots (default: <results dir>/scaling.html)")
    s.add_argument("--fit-json", default="", help="the fit (default: <results dir>/scaling_fit.json)")
    s.set_defaults(func=scaling_fit_command)
    s = ssub.add_parser("predict", help="compute-optimal N, D and loss for a FLOPs budget, and D = 20N's")
    s.add_argument("fit", help="a scaling_fit.json, or the directory holding it")
    s.add_argument("--flops", type=float, nargs="+", required=True, metavar="C", help="FLOPs budget(s), e.g. 1e18")
    s.add_argument("--tokens-per-param", type=float, default=20.0, help="the alternative's D/N (default 20)")
    s.set_defaults(func=scaling_predict_command)


def open_run(path: str):
    """The run directory a user named: a path or URL, or a bare run name under ``runs/``."""
    from pipeline.rundir import RunDir

    if "://" not in path and not os.path.isdir(path) and os.path.isdir(os.path.join("runs", path)):
        path = os.path.join("runs", path)
    return RunDir(path)


def stats_command(args) -> int:
    from pipeline.report.collect import load_stats
    from pipeline.report.funnel import render_funnel

    stats = load_stats(open_run(args.run))
    print(json.dumps(stats, indent=1) if args.json else render_funnel(stats))
    return 0


def report_command(args) -> int:
    from pipeline.report.html import write_report

    run = open_run(args.run)
    if run.local and os.path.exists(os.path.join(run.url, "ablation.json")):  # an ablation's output: its page
        from pipeline.report.ablation import write_html

        print(f"report: {write_html(run.url)}")
        return 0
    compare = open_run(args.compare).url if args.compare else None
    path = write_report(run.url, compare, args.training, args.output or "")
    print(f"report: {path}")
    return 0


def sample_command(args) -> int:
    from pipeline.report.collect import load_stats
    from pipeline.report.samples import known_reasons, sample_rejected

    run = open_run(args.run)
    if args.cluster:
        return _show_cluster(run, args.cluster, args.n, args.chars)
    reasons = known_reasons(load_stats(run))
    if args.reason not in reasons:
        known = ", ".join(reasons) or "none (no document was dropped)"
        raise ValueError(f"no document was dropped for {args.reason!r}; reasons in this run: {known}")
    docs = sample_rejected(run, args.reason, args.n, args.seed)
    for i, doc in enumerate(docs, 1):
        text = (doc.get("text") or "").strip()
        more = len(text) - args.chars
        shown = text[: args.chars] + (f" [... {more:,} more characters]" if more > 0 else "")
        print(f"--- {i}/{len(docs)}  {doc['reason']}  {doc.get('url') or ''}")
        print(f"    id {doc['id']}  from {doc.get('source')} @ {doc.get('offset')}")
        if doc.get("detail"):
            print(f"    why: {doc['detail']}")
        print(shown or "    (no text)")
    return 0


def _show_cluster(run, cluster: str, n: int, chars: int) -> int:
    from pipeline.report.samples import cluster_members, side_by_side

    members = cluster_members(run, cluster)
    if not members:
        raise ValueError(f"no dedup cluster {cluster!r} in this run (`refinery stats` lists the largest)")
    survivor = members[0]
    print(f"cluster {cluster}: {len(members)} documents; kept: {survivor['id']} ({survivor.get('url')})")
    for other in members[1 : n + 1]:
        print(f"\n--- kept {survivor['id']}  |  {other['outcome']} {other['id']} ({other.get('url')})")
        print(side_by_side(survivor["text"][:chars], other["text"][:chars]))
    return 0


def scaling_fit_command(args) -> int:
    from pipeline.report.scaling import run_fit

    print(f"fitting, then {args.bootstrap} bootstrap refits for the uncertainty ...", file=sys.stderr, flush=True)
    print(
        run_fit(
            args.results,
            loss=args.loss,
            params=args.params,
            best=args.best,
            resamples=args.bootstrap,
            seed=args.seed,
            tolerance=args.tolerance,
            html=args.html,
            fit_json=args.fit_json,
        )
    )
    return 0


def scaling_predict_command(args) -> int:
    from pipeline.report.scaling import render_predict
    from trainer.scaling import load_fit

    if any(c <= 0 for c in args.flops):
        raise ValueError("--flops must be positive")
    print(render_predict(load_fit(args.fit), args.flops, args.tokens_per_param))
    return 0
