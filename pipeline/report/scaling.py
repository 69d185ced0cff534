"""``refinery scaling fit`` and ``refinery scaling predict``: the terminal summary, the saved fit and the HTML
page (inline SVG, no network) of a scaling-law fit made by ``trainer.scaling``."""

from __future__ import annotations

import os
from html import escape

import numpy as np

from pipeline.report import charts
from trainer.scaling import FIT_FILE, NAMES, ScalingFit, fit_results, save_fit

RULE_OF_THUMB = 20.0  # Chinchilla's tokens per parameter
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1000px;padding:0 18px 60px;color:#222}
h2{border-bottom:2px solid #3b6ea5;padding-bottom:3px;margin-top:30px} table{border-collapse:collapse;margin:8px 0}
td,th{padding:2px 10px;text-align:right;border-bottom:1px solid #eee} td:first-child,th:first-child{text-align:left}
figure{margin:10px 0;border:1px solid #eee;padding:6px} figcaption{font-size:12px;color:#444}
svg.chart{display:block;width:100%;height:auto;max-width:800px} svg.chart text{font-size:11px;fill:#333}
.muted{color:#777}
"""


def count(value: float) -> str:
    """A parameter or token count to 3 significant digits: 1.23M, 45.6B."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= div:
            return f"{value / div:.3g}{suffix}"
    return f"{value:.3g}"


def run_fit(
    results: str,
    *,
    loss: str = "final_val_loss",
    params: str = "params",
    best: bool = False,
    resamples: int = 200,
    seed: int = 0,
    tolerance: float = 0.1,
    html: str = "",
    fit_json: str = "",
) -> str:
    """Fit the sweep's results, write the fit's JSON (default ``<results dir>/scaling_fit.json``) and HTML
    (default ``<results dir>/scaling.html``); the terminal summary. Options as ``trainer.scaling.fit_results``."""
    fit = fit_results(results, loss=loss, params=params, best=best, resamples=resamples, seed=seed, tolerance=tolerance)
    folder = os.path.dirname(fit.runs.source)
    json_path = save_fit(fit, fit_json or os.path.join(folder, FIT_FILE))
    html_path = html or os.path.join(folder, "scaling.html")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(build_html(fit))
    return f"{render_fit(fit)}\n\nfit: {json_path}\nplots: {html_path}"


def _described_columns(fit: ScalingFit) -> str:
    columns = fit.runs.columns
    kind = " (non-embedding)" if columns["params"] == "params" else ""
    return f"loss = {columns['loss']}, N = {columns['params']}{kind}, D = {columns['tokens']}"


def _skipped(fit: ScalingFit) -> str:
    skipped = fit.runs.skipped
    if not skipped:
        return "no row skipped"
    reasons = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    total = sum(skipped.values())
    return f"skipped {total} row{'s' if total > 1 else ''}: {reasons}"


def _largest_c(fit: ScalingFit) -> float:
    """The largest run's C = 6ND, the law's FLOPs (the results' FLOPs column may count more: the trainer's
    count includes the LM head and attention, which N leaves out)."""
    return float((6 * fit.runs.params * fit.runs.tokens).max())


def _budgets(fit: ScalingFit) -> list[float]:
    """The largest run's C = 6ND, and 10x and 100x that."""
    top = _largest_c(fit)
    return [top, 10 * top, 100 * top]


def _allocation_rows(fit: ScalingFit) -> list[list[str]]:
    rows = []
    for c in _budgets(fit):
        best, rule = fit.law.optimal(c), fit.law.at_ratio(c, RULE_OF_THUMB)
        rows.append(
            [f"{c:.3g}", count(best.params), count(best.tokens), f"{best.tokens_per_param:.3g}", f"{best.loss:.4g}"]
            + [count(rule.params), count(rule.tokens), f"{rule.loss:.4g}", f"{rule.loss - best.loss:+.3g}"]
        )
    return rows


ALLOCATION_HEADER = ["budget C", "N_opt", "D_opt", "D/N", "loss", "N (D=20N)", "D (D=20N)", "loss", "vs optimum"]


def render_fit(fit: ScalingFit) -> str:
    """The terminal summary of a fit: constants with uncertainty, allocations, IsoFLOP profiles, holdout."""
    law, spread = fit.law, fit.uncertainty()
    s = law.alpha + law.beta
    out = [
        f"scaling fit of {fit.runs.source}: {len(fit.runs)} runs; {_described_columns(fit)}",
        _skipped(fit),
        "",
        f"parametric law (Huber on log L, delta {fit.delta:g}; ± standard error and 95% interval from "
        f"{len(fit.samples)} bootstrap resamples, seed {fit.seed})",
        f"  {law.formula()}",
    ]
    for name in NAMES:
        u = spread[name]
        out.append(f"  {name:<6} {getattr(law, name):>10.4g}  ± {u['se']:<9.3g} [{u['low']:.4g}, {u['high']:.4g}]")
    out.append(f"  N_opt ∝ C^{law.beta / s:.3f} (beta/(alpha+beta)), D_opt ∝ C^{law.alpha / s:.3f}")
    out += ["", "compute-optimal allocation with C = 6ND: the law's minimum, and D = 20N (Chinchilla's rule of thumb)"]
    out += _table([ALLOCATION_HEADER, *_allocation_rows(fit)])
    out += ["", *_isoflop_lines(fit.isoflop), "", _holdout_line(fit.holdout)]
    return "\n".join(out)


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    return ["  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]


def _isoflop_lines(iso: dict) -> list[str]:
    found = [b for b in iso["budgets"] if b["params_opt"]]
    grouping = {
        "budget": "runs grouped by the sweep's budget column",
        "budget+flops": f"runs grouped by their budget, those without one within {iso['tolerance']:.0%} of a FLOPs "
        "budget",
    }.get(iso.get("grouping", "flops"), f"runs within {iso['tolerance']:.0%} of a budget grouped")
    head = f"IsoFLOP profiles ({grouping}): "
    if iso["a"] is None:
        head += f"no exponent: {iso['note']}"
    else:
        head += f"N_opt ∝ C^{iso['a']:.3f}, D_opt ∝ C^{iso['b']:.3f} from {len(found)} budgets"
    lines = [head]
    for b in iso["budgets"]:
        runs = f"budget {b['flops']:.3g}: {len(b['params'])} runs"
        if b["params_opt"]:
            lines.append(
                f"  {runs}, N_opt {count(b['params_opt'])}, D_opt {count(b['tokens_opt'])}, loss {b['loss_opt']:.4g}"
            )
        else:
            lines.append(f"  {runs}; {b['note']}")
    return lines


def _holdout_line(held: dict) -> str:
    where = f"trial {held['trial']} (the most FLOPs, {held['flops']:.3g}; N {count(held['params'])})"
    if "predicted" not in held:
        return f"holdout: {where}: {held['note']}"
    return (
        f"holdout: the law fitted on the other {held['runs']} runs predicts {where}: loss {held['predicted']:.4g}, "
        f"observed {held['observed']:.4g}, error {held['abs_error']:.3g} ({held['rel_error']:.2%})"
    )


def render_predict(fit: ScalingFit, budgets: list[float], tokens_per_param: float = RULE_OF_THUMB) -> str:
    """``refinery scaling predict``: the compute-optimal N and D for each budget, with bootstrap intervals,
    and the ``tokens_per_param`` alternative with its predicted loss."""
    out = [f"law from {len(fit.runs)} runs of {fit.runs.source} ({_described_columns(fit)}): {fit.law.formula()}"]
    largest = _largest_c(fit)
    for c in budgets:
        best, rule = fit.law.optimal(c), fit.law.at_ratio(c, tokens_per_param)
        span = fit.optimal_interval(c)
        interval = {key: f"[95%: {fmt(lo)}, {fmt(hi)}]" for key, (lo, hi), fmt in _formatted(span)}
        out += [
            "",
            f"budget C = {c:.3g} FLOPs (C = 6ND)",
            f"  compute-optimal: N = {count(best.params)} {interval['params']}, D = {count(best.tokens)} "
            f"{interval['tokens']}",
            f"    {best.tokens_per_param:.3g} tokens per parameter {interval['tokens_per_param']},"
            f" predicted loss {best.loss:.4g} {interval['loss']}",
            f"  D = {tokens_per_param:g} N: N = {count(rule.params)}, D = {count(rule.tokens)}, predicted loss "
            f"{rule.loss:.4g} ({rule.loss - best.loss:+.3g} against the optimum)",
        ]
        if c > 10 * largest:
            out.append(
                f"  note: {c / largest:.3g}x the largest run's C = 6ND ({largest:.3g}): the law is extrapolated, and "
                "the intervals are the fit's spread, not a guarantee that the law holds there"
            )
    return "\n".join(out)


def _formatted(span: dict) -> list:
    """(key, interval, formatter) of an allocation's intervals."""
    formats = {"params": count, "tokens": count, "tokens_per_param": "{:.3g}".format, "loss": "{:.4g}".format}
    return [(key, span[key], fmt) for key, fmt in formats.items()]


def build_html(fit: ScalingFit) -> str:
    """The fit's page: constants, allocations, loss against FLOPs with the compute-optimal frontier,
    IsoFLOP curves, N_opt against C, observed against predicted loss."""
    law, spread, runs = fit.law, fit.uncertainty(), fit.runs
    constants = "<table><tr><th>constant</th><th>fitted</th><th>± s.e.</th><th>95% interval</th></tr>"
    for name in NAMES:
        u = spread[name]
        constants += (
            f"<tr><td>{name}</td><td>{getattr(law, name):.4g}</td><td>{u['se']:.3g}</td>"
            f"<td>[{u['low']:.4g}, {u['high']:.4g}]</td></tr>"
        )
    constants += "</table>"
    allocation = "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in ALLOCATION_HEADER) + "</tr>"
    allocation += "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in _allocation_rows(fit))
    allocation += "</table>"
    iso = "<br>".join(escape(line) for line in _isoflop_lines(fit.isoflop))
    body = [
        f"<h1>Scaling law of {escape(runs.source)}</h1>",
        f"<p>{len(runs)} runs; {escape(_described_columns(fit))}; {escape(_skipped(fit))}.</p>",
        f"<h2>Fitted law</h2><p><code>{escape(law.formula())}</code> (Huber loss on log L, delta {fit.delta:g}; "
        f"{len(fit.samples)} bootstrap resamples, seed {fit.seed})</p>{constants}",
        f"<h2>Compute-optimal allocation (C = 6ND)</h2>{allocation}",
        "<h2>Plots</h2>",
        _figure(
            _frontier_chart(fit),
            "Loss against training compute C = 6ND of every run (N as fitted), with the law's loss at the "
            "compute-optimal N and D of each budget and with D = 20N.",
        ),
        _figure(
            _isoflop_chart(fit),
            "IsoFLOP profiles: loss against N for the runs of each budget, and the parabola in log N fitted to them.",
        ),
        _figure(
            _optimum_chart(fit),
            "Compute-optimal N against C: the IsoFLOP minima (C: the sweep's budget, else its FLOPs column) and their "
            "power law, and "
            "the parametric law's N_opt(C) (C = 6ND).",
        ),
        _figure(
            _parity_chart(fit),
            "Observed loss against the law's prediction; the held-out run is predicted by the law fitted without it.",
        ),
        f"<h2>IsoFLOP profiles</h2><p>{iso}</p>",
        f"<h2>Holdout</h2><p>{escape(_holdout_line(fit.holdout))}</p>",
    ]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>scaling law</title>'
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )


def _figure(chart: str, caption: str) -> str:
    if not chart:
        return ""
    return f"<figure>{chart}<figcaption>{escape(caption)}</figcaption></figure>"


def _label(runs, i: int) -> str:
    return (
        f"{runs.trials[i]}: N {count(runs.params[i])}, D {count(runs.tokens[i])}, C {runs.flops[i]:.3g}, "
        f"loss {runs.loss[i]:.4g}"
    )


def _frontier_chart(fit: ScalingFit) -> str:
    runs = fit.runs
    flops = 6 * runs.params * runs.tokens  # the law's C, which the sweep's FLOPs column may count differently
    budgets = np.logspace(np.log10(flops.min()), np.log10(flops.max() * 10), 60)
    points = {"runs": [(flops[i], runs.loss[i], _label(runs, i)) for i in range(len(runs))]}
    curves = {
        "compute-optimal (law)": [(c, fit.law.optimal(c).loss) for c in budgets],
        "D = 20N (law)": [(c, fit.law.at_ratio(c, RULE_OF_THUMB).loss) for c in budgets],
    }
    return charts.scatter(points, curves, log_x=True, x_label="C = 6ND", y_label="loss")


def _isoflop_chart(fit: ScalingFit) -> str:
    points, curves = {}, {}
    for b in fit.isoflop["budgets"]:
        name = f"C = {b['flops']:.2g}"
        points[name] = list(zip(b["params"], b["loss"]))
        if b["parabola"]:
            c2, c1, c0 = b["parabola"]
            xs = np.linspace(np.log(min(b["params"])), np.log(max(b["params"])), 40)
            curves[name] = [(float(np.exp(x)), float(c2 * x * x + c1 * x + c0)) for x in xs]
    return charts.scatter(points, curves, log_x=True, x_label="parameters N", y_label="loss")


def _optimum_chart(fit: ScalingFit) -> str:
    iso, runs = fit.isoflop, fit.runs
    found = [b for b in iso["budgets"] if b["params_opt"]]
    budgets = np.logspace(np.log10(runs.flops.min()), np.log10(runs.flops.max() * 10), 40)
    points = {"IsoFLOP minima": [(b["flops"], b["params_opt"]) for b in found]}
    curves = {"parametric law": [(c, fit.law.optimal(c).params) for c in budgets]}
    if iso["a"] is not None:
        curves["IsoFLOP power law"] = [(c, iso["coefficient"] * c ** iso["a"]) for c in budgets]
    return charts.scatter(points, curves, log_x=True, log_y=True, x_label="training FLOPs C", y_label="N_opt")


def _parity_chart(fit: ScalingFit) -> str:
    runs, held = fit.runs, fit.holdout
    predicted = fit.law.loss(runs.params, runs.tokens)
    points = {"runs": [(predicted[i], runs.loss[i], _label(runs, i)) for i in range(len(runs))]}
    if "predicted" in held:
        points["held out"] = [(held["predicted"], held["observed"], f"trial {held['trial']} (fit without it)")]
    lo, hi = float(min(predicted.min(), runs.loss.min())), float(max(predicted.max(), runs.loss.max()))
    return charts.scatter(points, {"y = x": [(lo, lo), (hi, hi)]}, x_label="predicted loss", y_label="observed")
