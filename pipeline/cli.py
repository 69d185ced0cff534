"""The ``refinery`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from pipeline.schema import ConfigError

EXIT_CONFIG = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="refinery", description="Curate web text for language models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run (or resume) a workflow file on Ray")
    p.add_argument("workflow", help="a workflow file, e.g. workflows/demo.toml")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--output", help="parent folder of the run directory (default: the workflow's run.output)")
    p.add_argument("--restart", action="store_true", help="delete the run directory first and start over")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    p = sub.add_parser("validate", help="check a workflow file without running it")
    p.add_argument("workflow")
    p.set_defaults(func=_validate)

    p = sub.add_parser("stats", help="print the funnel of a run: documents and bytes per stage, filter, reason")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    p.add_argument("--json", action="store_true", help="print the merged statistics as JSON")
    p.set_defaults(func=_stats)

    p = sub.add_parser("sample", help="print documents dropped for one reason, or the members of a dedup cluster")
    p.add_argument("run", help="a run directory (runs/<name>) or its URL")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--reason", help="a drop reason as `refinery stats` prints it")
    which.add_argument("--cluster", help="a dedup cluster id (its surviving document's id): members side by side")
    p.add_argument("-n", type=int, default=5, help="how many documents (default 5)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--chars", type=int, default=800, help="characters of text to show per document (default 800)")
    p.set_defaults(func=_sample)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="refinery %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _run(args) -> int:
    from pipeline.funnel import render_funnel
    from pipeline.runner import RunFailed, run_workflow
    from pipeline.workflow import load_workflow

    workflow = load_workflow(args.workflow)
    try:
        stats = run_workflow(
            workflow,
            output=args.output,
            address=args.address,
            restart=args.restart,
            num_cpus=args.num_cpus,
            progress=not args.no_progress,
        )
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render_funnel(stats))
    print(f"\nrun directory: {stats['run']['run_dir']}")
    return 0


def _validate(args) -> int:
    from pipeline.workflow import load_workflow

    workflow = load_workflow(args.workflow)
    stages = ", ".join(f"{s.name} ({s.kind})" for s in workflow.stages)
    print(f"{args.workflow}: valid; {len(workflow.input_files)} input files; stages: {stages}")
    return 0


def _open_run(path: str):
    from pipeline.rundir import RunDir

    if "://" not in path and not os.path.isdir(path) and os.path.isdir(os.path.join("runs", path)):
        path = os.path.join("runs", path)
    return RunDir(path)


def _stats(args) -> int:
    from pipeline.funnel import load_stats, render_funnel

    stats = load_stats(_open_run(args.run))
    print(json.dumps(stats, indent=1) if args.json else render_funnel(stats))
    return 0


def _sample(args) -> int:
    from pipeline.funnel import known_reasons, load_stats, sample_rejected

    run = _open_run(args.run)
    if args.cluster:
        return _show_cluster(run, args.cluster, args.n, args.chars)
    reasons = known_reasons(load_stats(run))
    if args.reason not in reasons:
        print(
            f"error: no document was dropped for {args.reason!r}; reasons in this run: {', '.join(reasons)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    docs = sample_rejected(run, args.reason, args.n, args.seed)
    for i, doc in enumerate(docs, 1):
        text = (doc.get("text") or "").strip()
        shown = text[: args.chars] + (
            f" [... {len(text) - args.chars:,} more characters]" if len(text) > args.chars else ""
        )
        print(f"--- {i}/{len(docs)}  {doc['reason']}  {doc.get('url') or ''}")
        print(f"    id {doc['id']}  from {doc.get('source')} @ {doc.get('offset')}")
        if doc.get("detail"):
            print(f"    detail: {doc['detail']}")
        print(shown or "    (no text)")
    return 0


def _show_cluster(run, cluster: str, n: int, chars: int) -> int:
    from pipeline.funnel import cluster_members, side_by_side

    members = cluster_members(run, cluster)
    if not members:
        print(f"error: no dedup cluster {cluster!r} in this run (`refinery stats` lists the largest)", file=sys.stderr)
        return EXIT_CONFIG
    survivor = members[0]
    print(f"cluster {cluster}: {len(members)} documents; kept: {survivor['id']} ({survivor.get('url')})")
    for other in members[1 : n + 1]:
        print(f"\n--- kept {survivor['id']}  |  {other['outcome']} {other['id']} ({other.get('url')})")
        print(side_by_side(survivor["text"][:chars], other["text"][:chars]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
