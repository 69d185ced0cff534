"""``refinery run`` and ``refinery validate``: run (or resume) a workflow file; check a workflow, training,
fine-tuning or sweep file without running it."""

from __future__ import annotations

import argparse
import sys
import tomllib


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run`` and ``validate``."""
    p = sub.add_parser("run", help="run (or resume) a workflow file on Ray")
    p.add_argument("workflow", help="a workflow file, e.g. workflows/demo.toml")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--output", help="parent folder of the run directory (default: the workflow's run.output)")
    p.add_argument("--restart", action="store_true", help="delete the run directory first and start over")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-models", action="store_true", help="skip the workflow's [train], [sft] and [generate]")
    p.set_defaults(func=run_command)

    p = sub.add_parser("validate", help="check a workflow, training or sweep file without running it")
    p.add_argument("workflow")
    p.set_defaults(func=validate_command)


def run_command(args) -> int:
    from pipeline.engine.cluster import disconnect
    from pipeline.engine.executor import RunFailed
    from pipeline.models.steps import check_model_steps, render_summary, run_model_steps
    from pipeline.report.funnel import render_funnel
    from pipeline.report.html import write_report
    from pipeline.runner import run_workflow
    from pipeline.workflow import load_workflow

    workflow = load_workflow(args.workflow)
    models = not args.no_models and (workflow.train or workflow.sft)
    if models:
        check_model_steps(workflow, workflow.run_dir(args.output))
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
    finally:  # a local Ray stops now, not at exit (its idle workers would hold memory while models train)
        disconnect()
    print(render_funnel(stats))
    run_dir = stats["run"]["run_dir"]
    print(f"\nrun directory: {run_dir}")
    done = run_model_steps(workflow, run_dir, progress=not args.no_progress) if models else {}
    report = write_report(run_dir)
    if models:
        print("\n" + render_summary(stats, done, report))
    else:
        print(f"report: {report}")
    return 0


def validate_command(args) -> int:
    """Tell the kind of file by its sections, then build all of it as a run would."""
    try:
        with open(args.workflow, "rb") as f:
            sections = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        sections = {}  # the workflow loader names the problem
    if "sweep" in sections and "stages" not in sections:
        from pipeline.models.sweep_file import describe_sweep, load_sweep

        print(describe_sweep(load_sweep(args.workflow)))
    elif "ablation" in sections and "stages" not in sections:
        from pipeline.models.ablation_file import describe_ablation, load_ablation

        print(describe_ablation(load_ablation(args.workflow)))
    elif "stages" not in sections and {"init", "template", "loss", "eval"} & set(sections):
        _validate_model_file(args.workflow, "fine-tuning")
    elif "stages" not in sections and ("model" in sections or "data" in sections):
        _validate_model_file(args.workflow, "training")
    else:
        _validate_workflow(args.workflow)
    return 0


def _validate_model_file(path: str, what: str) -> None:
    from pipeline.models.configs import MissingCheckpoint, load_sft_config, load_train_config
    from trainer.accounting import describe

    try:
        config = (load_sft_config if what == "fine-tuning" else load_train_config)(path)
    except MissingCheckpoint as exc:  # every other section was checked before the checkpoint
        first = "train it first" if what == "fine-tuning" else "train the teacher first"
        print(f"{path}: valid {what} configuration, but {exc.expected} yet ({first})")
        return
    print(
        f"{path}: valid {what} configuration; {config.model.n_layers} layers x {config.model.d_model}, "
        f"{config.train.steps} steps"
    )
    dtype = "bfloat16" if config.train.dtype == "bfloat16" else "float32"
    print(describe(config.model, config.train.batch_size, config.optim.name, dtype))


def _validate_workflow(path: str) -> None:
    from pipeline.models.steps import check_model_steps
    from pipeline.workflow import load_workflow

    workflow = load_workflow(path)
    check_model_steps(workflow, workflow.run_dir())
    stages = ", ".join(f"{s.name} ({s.kind})" for s in workflow.stages)
    steps = [f"{n} ({getattr(workflow, n).config})" for n in ("train", "sft") if getattr(workflow, n)]
    steps += [f"generate ({len(workflow.generate.prompts)} prompts)"] if workflow.generate else []
    print(
        f"{path}: valid; {len(workflow.input_files)} input files; stages: {stages}"
        + (f"; then {', '.join(steps)}" if steps else "")
    )
