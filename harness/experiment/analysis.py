"""The analysis of `make experiment`: experiment.json, experiment.md and one plot per score.

Reads only the arms' files: each evaluation's ``problems.csv`` (n samples and c passes per problem,
turned into unbiased pass@1 per problem by `harness.experiment.stats`) and each arm's ``summary.json`` rows
(`harness.loop.loop.write_summary`, for the diagnostics). Every figure is computed once, in `analyse`, and the
JSON, the Markdown and the plots all read that one result. The plan (primary endpoint, confidence,
bootstrap resamples and seed, the reference effect of the verdict) is the pre-registered one in
``experiment.yaml``.
"""
from __future__ import annotations

import csv
import statistics
from dataclasses import asdict
from itertools import combinations
from pathlib import Path

from harness.experiment import stats
from harness.experiment.ablation import minutes, wall_minutes
from harness.experiment.arms import donors, greedy_dir
from harness.experiment.config import train_config
from harness.runs.layout import METRICS, read_json
from harness.reports.mdtable import md_table
from harness.reports.plots import plot_per_iteration
from verilog_tools.errors import UserError

PerSeed = list[dict[str, float]]   # one {task_id: pass@1} per seed, in the plan's seed order


def problem_values(eval_dir: Path) -> dict[str, float]:
    """{task_id: unbiased pass@1} of one evaluation folder (its problems.csv)."""
    path = eval_dir / "problems.csv"
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {r["task_id"]: stats.problem_pass_at_1(int(r["n"]), int(r["c"])) for r in csv.DictReader(fh)}
    except OSError:
        raise UserError(f"{path} is missing; rerun the experiment with the same RUN to finish its arms") from None


def _rows(per_seed: PerSeed) -> tuple[list[list[str]], list[list[float]]]:
    ids = [sorted(v) for v in per_seed]
    return ids, [[v[t] for t in i] for v, i in zip(per_seed, ids)]


def paired(a: PerSeed, b: PerSeed, what: str) -> PerSeed:
    """Cell-by-cell difference a - b; refused when a seed's two sides hold different problems."""
    for seed_a, seed_b in zip(a, b):
        if set(seed_a) != set(seed_b):
            raise UserError(f"{what}: the two sides were evaluated on different problems; pairing needs "
                            f"the same held-out set (same data_seed and eval settings)")
    return [{t: x[t] - y[t] for t in x} for x, y in zip(a, b)]


def mean_interval(per_seed: PerSeed, plan) -> dict:
    """Bootstrap interval (seeds x problems) and the t-interval over seeds of the mean."""
    ids, rows = _rows(per_seed)
    boot = stats.bootstrap_mean(rows, crossed=stats.is_crossed(ids), resamples=plan.bootstrap_resamples,
                                confidence=plan.confidence, seed=plan.bootstrap_seed)
    seed_means = [sum(r) / len(r) for r in rows]
    return {"bootstrap": boot.to_dict(), "t": stats.t_interval(seed_means, plan.confidence).to_dict(),
            "per_seed": seed_means, "problems": [len(r) for r in rows]}


def verdict(diff: dict, plan) -> str:
    """The pre-registered reading of the primary endpoint's paired bootstrap interval."""
    boot, ref, t = diff["bootstrap"], plan.reference_effect, plan.treatment
    ci = f"{plan.confidence:.0%} CI [{boot['low']:+.3f}, {boot['high']:+.3f}]"
    if boot["low"] > 0:
        return f"supports the claim at this scale: {t} beats {plan.control} ({ci} excludes 0)"
    if boot["high"] < 0:
        return f"contradicts the claim: {plan.control} beats {t} ({ci} excludes 0)"
    if boot["high"] < ref:
        return f"no effect detected, and an effect of the paper's size (+{ref:.3f}) is ruled out ({ci})"
    seeds = per_seed_sd = None
    if len(diff["per_seed"]) > 1:
        per_seed_sd = statistics.stdev(diff["per_seed"])
        seeds = stats.seeds_for_halfwidth(per_seed_sd, ref / 2, plan.confidence)
    more = (f"about {seeds} seeds would give a t-interval half-width of {ref / 2:.3f} at the observed seed-to-seed "
            f"SD {per_seed_sd:.3f}" if seeds else "more than one seed is needed to say how many more would")
    return f"cannot tell: the {ci} holds both 0 and +{ref:.3f}; {more}"


def evaluated(cfg, arms) -> list[int]:
    """The iterations every arm evaluated (0, every ``eval_every``-th and the last)."""
    its = [set(train_config(cfg, a).evaluated_iterations()) for a in arms]
    return sorted(set.intersection(*its))


def load_values(run_dir: Path, cfg, arms, donor_of: dict, last: int) -> dict:
    """{(score, arm, kind, iteration): PerSeed} for kind 'sampled' (every evaluated iteration) and 'greedy'."""
    by_key: dict = {}
    its = evaluated(cfg, arms)
    for a in arms:  # arm_runs order: seeds outermost, so each list follows cfg.seeds
        d = run_dir / "arms" / a.name
        for it in its:
            by_key.setdefault((a.score, a.arm, "sampled", it), []).append(problem_values(d / f"iter-{it:02d}" / "eval"))
        if cfg.greedy:
            for it, source in ((0, donor_of[a.name]), (last, a.name)):
                by_key.setdefault((a.score, a.arm, "greedy", it), []).append(
                    problem_values(greedy_dir(run_dir, source, it)))
    return by_key


def diagnostics(run_dir: Path, arms, score: str, arm: str) -> dict[int, dict[str, float]]:
    """Each iteration's numeric row metrics (the arm's summary.json), averaged over the arm's seeds."""
    sums: dict[int, dict[str, list]] = {}
    for a in (a for a in arms if a.score == score and a.arm == arm):
        for row in read_json(run_dir / "arms" / a.name / "summary.json").get("iterations", []):
            for key, value in row.items():
                if key != "iteration" and not key.startswith("pass@") and isinstance(value, (int, float)) \
                        and not isinstance(value, bool):
                    sums.setdefault(row["iteration"], {}).setdefault(key, []).append(value)
    return {it: {k: sum(v) / len(v) for k, v in keys.items()} for it, keys in sorted(sums.items())}


def analyse(run_dir: Path, cfg, arms, donor_of: dict, last: int) -> dict:
    """Every figure of the report, per score."""
    plan, values = cfg.plan, load_values(run_dir, cfg, arms, donor_of, last)
    kinds = ("sampled", "greedy") if cfg.greedy else ("sampled",)
    sampled_its = evaluated(cfg, arms)
    out = {}
    for score in cfg.scores:
        v = lambda arm, kind, it: values[(score, arm, kind, it)]  # noqa: E731
        per_arm = {arm: {kind: {it: mean_interval(v(arm, kind, it), plan) for it in
                                (sampled_its if kind == "sampled" else (0, last))} for kind in kinds}
                   for arm in cfg.arms}
        change = {arm: mean_interval(paired(v(arm, "sampled", last), v(arm, "sampled", 0), f"{arm} last vs 0"), plan)
                  for arm in cfg.arms}
        t, c = plan.treatment, plan.control
        primary = mean_interval(paired(v(t, "sampled", last), v(c, "sampled", last), f"{t} vs {c}"), plan)
        pairs = [(a, b) for a, b in combinations(cfg.arms, 2) if {a, b} != {t, c}]
        secondary = {f"{a} - {b}": mean_interval(paired(v(a, "sampled", last), v(b, "sampled", last), f"{a} vs {b}"), plan)
                     for a, b in pairs}
        if cfg.greedy:
            secondary[f"{t} - {c} (greedy)"] = mean_interval(
                paired(v(t, "greedy", last), v(c, "greedy", last), f"{t} vs {c} greedy"), plan)
        out[score] = {"arms": per_arm, "change_from_iteration_0": change,
                      "primary": {**primary, "comparison": f"{t} - {c}", "iteration": last,
                                  "verdict": verdict(primary, plan)},
                      "secondary": secondary,
                      "diagnostics": {arm: diagnostics(run_dir, arms, score, arm) for arm in cfg.arms}}
    return out


def _ci(entry: dict, signed: bool = False) -> str:
    b = entry["bootstrap"]
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(b['estimate'])} [{fmt.format(b['low'])}, {fmt.format(b['high'])}]"


def _t(entry: dict) -> str:
    t = entry["t"]
    return "-" if t["low"] is None else f"[{t['low']:+.3f}, {t['high']:+.3f}]"


def score_section(score: str, result: dict, cfg, last: int, plot: str | None) -> str:
    plan, arms = cfg.plan, list(cfg.arms)
    p = result["primary"]
    per_seed = ", ".join(f"{x:+.3f}" for x in p["per_seed"])
    primary = md_table(["comparison (pre-registered)", f"difference at iteration {last}", "paired bootstrap CI",
                        "t-interval over seeds", "per seed"], [[p["comparison"], f"{p['bootstrap']['estimate']:+.3f}",
                                                                _ci(p, True), _t(p), per_seed]])
    greedy = cfg.greedy
    arm_rows = [[arm, _ci(result["arms"][arm]["sampled"][0]), _ci(result["arms"][arm]["sampled"][last]),
                 _ci(result["change_from_iteration_0"][arm], True)]
                + ([_ci(result["arms"][arm]["greedy"][0]), _ci(result["arms"][arm]["greedy"][last])] if greedy else [])
                for arm in arms]
    header = ["arm", "pass@1, iteration 0", f"pass@1, iteration {last}", "change from iteration 0"] + (
        ["greedy pass@1, iteration 0", f"greedy pass@1, iteration {last}"] if greedy else [])
    secondary = md_table(["comparison (secondary)", "difference [paired bootstrap CI]", "t-interval over seeds"],
                         [[name, _ci(e, True), _t(e)] for name, e in result["secondary"].items()])
    per_it = md_table(["iteration", *arms], [[it, *(_ci(result["arms"][a]["sampled"][it]) for a in arms)]
                                             for it in sorted(result["arms"][arms[0]]["sampled"])])
    parts = [f"## Score `{score}`", primary, f"**Verdict ({plan.treatment} vs {plan.control}, score {score}):** "
             f"{p['verdict']}.", md_table(header, arm_rows), secondary,
             f"Held-out pass@1 per iteration (estimate [{plan.confidence:.0%} bootstrap CI]):", per_it,
             f"![pass@1 per iteration, score {score}]({plot})" if plot else "No plot (matplotlib missing).",
             diagnostics_table(result["diagnostics"])]
    return "\n\n".join(parts)


def diagnostics_table(diag: dict) -> str:
    keys = sorted({k for per_it in diag.values() for row in per_it.values() for k in row})
    if not keys:
        return "No per-iteration diagnostics in the arms' summaries."
    rows = [[arm, it, *(row.get(k) for k in keys)] for arm, per_it in diag.items() for it, row in per_it.items()]
    return ("Per-iteration diagnostics (mean over seeds; from each arm's summary.json):\n\n"
            + md_table(["arm", "iteration", *(METRICS.get(k, k) for k in keys)], rows))


def plot_score(run_dir: Path, score: str, result: dict, cfg, last: int) -> str | None:
    name = f"experiment_pass_at_1_{score}.png"
    its = sorted(result["arms"][cfg.plan.treatment]["sampled"])
    boots = {a: [result["arms"][a]["sampled"][it]["bootstrap"] for it in its] for a in cfg.arms}
    try:
        path = plot_per_iteration(run_dir / name, {a: (its, [b["estimate"] for b in bs]) for a, bs in boots.items()},
                                  intervals={a: ([b["low"] for b in bs], [b["high"] for b in bs]) for a, bs in boots.items()},
                                  title=f"Held-out pass@1 per iteration, score {score} "
                                        f"(mean of {len(cfg.seeds)} seeds, {cfg.plan.confidence:.0%} bootstrap CI)",
                                  ylabel="held-out pass@1 (fraction of problems)")
    except ImportError:
        return None
    return name if path else None


def write_results(run, cfg, arms) -> str:
    """Analyse the finished arms of ``run``; write experiment.json, experiment.md and the plots."""
    donor_of = donors(cfg, arms)
    last = train_config(cfg, arms[0]).iters
    result = analyse(run.path, cfg, arms, donor_of, last)
    tc = train_config(cfg, arms[0])
    greedy = [p / "metrics.json" for a in arms for p in (run.path / "greedy" / a.name).glob("iter-*")]
    wall = minutes(wall_minutes([run.path / "arms" / a.name for a in arms], greedy))
    first = result[cfg.scores[0]]["arms"][arms[0].arm]["sampled"][0]
    n_problems = sorted(set(first["problems"]))
    head = (f"# Experiment: does iterating help? (preset {cfg.preset})\n\n"
            f"Arms {', '.join(f'`{a}` ({_fields(v)})' for a, v in cfg.arms.items())}; scores {', '.join(cfg.scores)}; "
            f"seeds {', '.join(map(str, cfg.seeds))}; data_seed {cfg.data_seed}; {last} iteration{'s' if last != 1 else ''} after the warm "
            f"start. Held-out evaluation: {tc.eval_bench}, {'/'.join(map(str, n_problems))} problems, n={tc.eval_n} "
            f"samples at temperature {tc.eval_temperature} (unbiased pass@1){'; greedy n=1 as a secondary figure' if cfg.greedy else ''}. "
            f"First arm start to the last job's end (an arm's training or a greedy evaluation): {wall}.\n\n"
            f"Pre-registered in experiment.yaml before any arm ran: the primary endpoint is iteration {last}'s pass@1 of "
            f"`{cfg.plan.treatment}` minus `{cfg.plan.control}`, paired on seeds and problems, per score, with a "
            f"{cfg.plan.confidence:.0%} paired bootstrap over seeds and problems ({cfg.plan.bootstrap_resamples} "
            f"resamples, RNG seed {cfg.plan.bootstrap_seed}) and a t-interval over seeds. Secondary: "
            f"{'; '.join(cfg.plan.secondary)}.")
    sections = [score_section(s, result[s], cfg, last, plot_score(run.path, s, result[s], cfg, last))
                for s in cfg.scores]
    text = head + "\n\n" + "\n\n".join(sections) + "\n"
    run.write_text("experiment.md", text)
    run.write_json("experiment.json", {"plan": asdict(cfg.plan), "last_iteration": last, "wall": wall,
                                       "donors": donor_of, "scores": _json_keys(result)})
    return text


def _fields(fields: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in fields.items()) or "the preset"


def _json_keys(obj):
    """Integer iteration keys as strings (JSON objects), recursively."""
    if isinstance(obj, dict):
        return {str(k): _json_keys(v) for k, v in obj.items()}
    return obj
