"""The model steps of a workflow, after its document stages: ``[train]`` pretrains on the run's token
shards (into ``<run>/train``), ``[sft]`` fine-tunes that model (``<run>/sft``), ``[generate]`` answers a few
prompts with the last model; then a short summary of the whole chain. Each step is the same code as
``refinery train`` / ``refinery sft`` / ``refinery generate`` with the run's paths filled in, and resumes
from its checkpoint like they do."""

from __future__ import annotations

import json

import fsspec

from pipeline.workflow import Workflow


def model_overrides(workflow: Workflow, run_dir: str) -> dict[str, list[str]]:
    """The settings each model step takes from the run: its shards, its output folders, its trained model."""
    tokenize = workflow.stages[-1].name
    return {
        "train": [f'data.train=["{run_dir}/{tokenize}/shards/*"]', f'train.out_dir="{run_dir}/train"'],
        "sft": [f'init.checkpoint="{run_dir}/train"', f'train.out_dir="{run_dir}/sft"'],
    }


def check_model_steps(workflow: Workflow, run_dir: str) -> None:
    """Validate the ``[train]`` and ``[sft]`` files before any work (the trained model may not exist yet)."""
    from pipeline.models.configs import MissingCheckpoint, load_sft_config, load_train_config

    overrides = model_overrides(workflow, run_dir)
    if workflow.train:
        load_train_config(workflow.train.config, overrides["train"])
    if workflow.sft:
        try:
            load_sft_config(workflow.sft.config, overrides["sft"])
        except MissingCheckpoint:
            pass  # written by the [train] step


def run_model_steps(workflow: Workflow, run_dir: str, *, progress: bool = True) -> dict:
    """Train, fine-tune and generate as the workflow says; what happened, for :func:`render_summary`."""
    from pipeline.locks import OutputClaim
    from pipeline.models.configs import load_sft_config, load_train_config
    from trainer.loop import Trainer
    from trainer.sft import SFTTrainer

    overrides = model_overrides(workflow, run_dir)
    done: dict = {}
    train, sft = f"{run_dir}/train", f"{run_dir}/sft"  # local folders or URLs, as the run directory is
    if workflow.train:
        with OutputClaim(train, "training out_dir"):
            Trainer(load_train_config(workflow.train.config, overrides["train"]), progress=progress).run()
        done["train"] = _metrics(train)
    if workflow.sft:
        with OutputClaim(sft, "fine-tuning out_dir"):
            SFTTrainer(load_sft_config(workflow.sft.config, overrides["sft"]), progress=progress).run()
        done["sft"] = _metrics(sft)
    if workflow.generate:
        done["generated"] = _generate(workflow, sft if workflow.sft else train)
    return done


def _metrics(out_dir: str) -> dict:
    with fsspec.open(f"{out_dir}/metrics.jsonl", "r") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {"out_dir": out_dir, "rows": rows}


def _generate(workflow: Workflow, out_dir: str) -> list[tuple[str, str]]:
    from tokenizer.bpe import Tokenizer
    from trainer.chat import ChatTemplate, CompiledTemplate
    from trainer.checkpoint import checkpoint_path
    from trainer.generate import generate, load_model

    step = workflow.generate
    model, payload = load_model(checkpoint_path(out_dir))
    tokenizer = Tokenizer.load(payload["tokenizer_dir"])
    chat = CompiledTemplate(ChatTemplate(**payload["template"]), tokenizer) if "template" in payload else None
    answers = []
    for prompt in step.prompts:
        ids = chat.prompt([("user", prompt)]) if chat else tokenizer.encode(prompt)
        stop = chat.stop_id if chat else tokenizer.special_ids.get("<|endoftext|>")
        out = generate(model, ids, step.max_new_tokens, temperature=step.temperature, eos_id=stop, seed=step.seed)
        answers.append((prompt, chat.answer(out.tokens) if chat else tokenizer.decode(out.tokens)))
    return answers


def render_summary(stats: dict, models: dict, report: str) -> str:
    """A few lines on the whole chain: documents at each step, tokens, losses, generated text, the report."""
    stages = stats["stages"]
    flow = " -> ".join(f"{s['docs_kept']:,} after {s['stage']}" for s in stages if s["kind"] != "tokenize")
    lines = [f"summary of run {stats['run']['name']}", f"  documents: {stages[0]['docs_in']:,} read -> {flow}"]
    tokenize = next((s for s in stages if s["kind"] == "tokenize"), None)
    if tokenize and tokenize.get("events", {}).get("tokens"):
        tokens = tokenize["events"]["tokens"]
        lines.append(f"  tokens: {tokens:,} ({tokenize['bytes_in'] / tokens:.2f} bytes per token)")
    for name, label in (("train", "pretraining"), ("sft", "fine-tuning")):
        if name not in models:
            continue
        rows = models[name]["rows"]
        losses = [r["loss"] for r in rows if "loss" in r]
        valid = [r["val_loss"] for r in rows if "val_loss" in r]
        text = f"  {label}: {rows[-1]['step']} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}"
        text += f", validation {valid[0]:.3f} -> {valid[-1]:.3f}" if len(valid) > 1 else ""
        scored = [r["val_exact_match"] for r in rows if "val_exact_match" in r]
        text += f", held-out exact match {scored[0]:.3f} -> {scored[-1]:.3f}" if len(scored) > 1 else ""
        lines.append(f"{text}  ({models[name]['out_dir']})")
    for prompt, answer in models.get("generated", []):
        lines.append(f"  > {prompt}\n    {answer.strip()!r}")
    lines.append(f"  report: {report}")
    return "\n".join(lines)
