"""The verdict of an ablation: per dataset the mean of a metric over its seeds with a bootstrap interval over
seeds and evaluation units (reference documents, or task items), the ranking, the differences between
datasets with their intervals, and whether the ranking holds seed by seed.

A metric is a ratio of sums over units (bits over bytes for bits per byte; the mean of a per-item score for
a task), computed per trial. One bootstrap resample draws the units with replacement, once for all datasets
(every model read the same documents, so a hard document is hard for all: the differences are paired), and
each dataset's seeds with replacement, independently; a dataset's value is the mean over its drawn seeds of
the ratio over the drawn units. Intervals are the 2.5th and 97.5th percentiles of 2,000 resamples (seeded).
"""

from __future__ import annotations

import itertools

import numpy as np

RESAMPLES = 2000


def lower_is_better(metric: str) -> bool:
    """Bits per byte (``bpb``, and ``bpb:<reference file>``); the tasks' metrics are better higher."""
    return metric.split(":")[0] == "bpb"


def metric_units(scores: dict) -> dict[str, tuple[list[float], list[float]]]:
    """A trial's per-unit (numerator, denominator) of every metric, from :func:`trainer.ablation.evaluate`:
    bits per byte over all reference documents, then over those of each reference file (``bpb:<name>``, when
    there are several), then the tasks'."""
    out = {"bpb": (scores["bits"], scores["bytes"])}
    sources = scores.get("sources") or []
    for source in dict.fromkeys(sources) if len(set(sources)) > 1 else ():
        keep = [i for i, s in enumerate(sources) if s == source]
        out[f"bpb:{source}"] = ([scores["bits"][i] for i in keep], [scores["bytes"][i] for i in keep])
    for task, values in scores.items():
        if isinstance(values, dict) and values["right"]:
            ones = [1.0] * len(values["right"])
            out[f"{task}_correct_prob"] = (values["correct_prob"], ones)
            out[f"{task}_accuracy"] = (values["right"], ones)
    return out


def verdict(scores: dict[str, list[dict]], resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """Every metric's verdict over datasets (name -> the per-unit scores of its trials, one per seed, in seed
    order)."""
    units = {name: [metric_units(s) for s in trials] for name, trials in scores.items()}
    metrics = list(next(iter(units.values()))[0])
    return {m: metric_verdict({n: [u[m] for u in t] for n, t in units.items()}, m, resamples, seed) for m in metrics}


def metric_verdict(trials: dict[str, list[tuple]], metric: str, resamples: int, seed: int) -> dict:
    """One metric's verdict; ``trials``: dataset -> per seed (numerators, denominators) over the same units."""
    lower = lower_is_better(metric)
    names = list(trials)
    num = {n: np.asarray([t[0] for t in trials[n]], dtype=np.float64) for n in names}
    den = {n: np.asarray([t[1] for t in trials[n]], dtype=np.float64) for n in names}
    values = {n: num[n].sum(1) / den[n].sum(1) for n in names}  # per trial
    rng = np.random.default_rng(seed)
    n_units = num[names[0]].shape[1]
    weights = rng.multinomial(n_units, np.full(n_units, 1 / n_units), size=resamples).T.astype(np.float64)
    boot = {}
    for n in names:
        ratio = (num[n] @ weights) / (den[n] @ weights)  # (seeds, resamples)
        drawn = rng.integers(len(ratio), size=(resamples, len(ratio)))
        boot[n] = ratio[drawn, np.arange(resamples)[:, None]].mean(1)
    means = {n: float(values[n].mean()) for n in names}
    ranking = rank(means, lower)
    stacked = np.stack([boot[n] for n in names])
    best = stacked.argmin(0) if lower else stacked.argmax(0)
    datasets = {
        n: {
            "mean": means[n],
            "low": float(np.percentile(boot[n], 2.5)),
            "high": float(np.percentile(boot[n], 97.5)),
            "seed_sd": float(values[n].std(ddof=1)) if len(values[n]) > 1 else 0.0,
            "trials": values[n].tolist(),
            "p_best": float((best == i).mean()),
        }
        for i, n in enumerate(names)
    }
    seeds = min(len(values[n]) for n in names)
    per_seed = [rank({n: float(values[n][k]) for n in names}, lower) for k in range(seeds)]
    return {
        "lower_is_better": lower,
        "units": n_units,
        "datasets": datasets,
        "ranking": ranking,
        "pairs": [_pair(a, b, means, boot, datasets) for a, b in itertools.combinations(ranking, 2)],
        "per_seed_rankings": per_seed,
        "stable_across_seeds": all(r == ranking for r in per_seed),
        "seeds_until_stable": seeds_until_stable(values, lower),
    }


def rank(values: dict[str, float], lower_is_better: bool) -> list[str]:
    """Names from best to worst (ties in the given order)."""
    return sorted(values, key=lambda n: values[n] if lower_is_better else -values[n])


def seeds_until_stable(values: dict[str, np.ndarray], lower_is_better: bool) -> int:
    """The fewest seeds k such that the ranking by the mean of the first k, k + 1, ... seeds is the final one."""
    seeds = min(len(v) for v in values.values())
    rankings = [rank({n: float(v[:k].mean()) for n, v in values.items()}, lower_is_better) for k in range(1, seeds + 1)]
    k = seeds
    while k > 1 and rankings[k - 2] == rankings[-1]:
        k -= 1
    return k


def _pair(a: str, b: str, means: dict, boot: dict, datasets: dict) -> dict:
    """``a`` (ranked higher) against ``b``: the difference of means, its interval, and the seed noise beside it."""
    diff = boot[a] - boot[b]
    low, high = float(np.percentile(diff, 2.5)), float(np.percentile(diff, 97.5))
    noise = float(np.sqrt((datasets[a]["seed_sd"] ** 2 + datasets[b]["seed_sd"] ** 2) / 2))
    return {
        "better": a,
        "worse": b,
        "difference": means[a] - means[b],
        "low": low,
        "high": high,
        "significant": low > 0 or high < 0,
        "seed_sd": noise,
    }
