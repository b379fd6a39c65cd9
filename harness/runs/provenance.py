"""What metrics.json must carry to be read alone (lm-evaluation-harness's results files do the same):
benchmark and data hash (of the whole problem set, and of this shard), model, sampling settings and
prompt template, simulator, containment, git commit, shard, and syntax pass@k beside pass@k."""
from __future__ import annotations

from harness.runs.folder import git_info
from tasks.shards import group_results, syntax_pass_metrics
from verilog_tools import container
from verilog_tools.errors import UserError


def containment_mode() -> str:
    """The verifier's containment mode (`bwrap` or `none`); "unknown" if the setting is invalid."""
    try:
        return container.containment_mode()
    except UserError:
        return "unknown"


def sampling_settings(config, generated: bool) -> dict | None:
    """The settings that produced the samples; None when they came from a file or the reference."""
    if not generated:
        return None
    return {"n": config.n, "temperature": config.temperature, "top_p": config.top_p, "seed": config.seed,
            "max_new_tokens": config.max_new_tokens, "template": config.template}


def eval_provenance(config, problems: list, results: list[dict], whole_data_hash: str) -> dict:
    """The provenance fields of metrics.json for one evaluation (see module doc)."""
    generated = config.samples is None and config.model != "reference"
    templates = sorted({str(r.get("prompt_template")) for r in results if r.get("prompt_template")})
    task_ids = [p.task_id for p in problems]
    out = {
        "benchmark_data_hash": whole_data_hash,
        "model": config.model,
        "sampling": sampling_settings(config, generated),
        "prompt_template": templates[0] if len(templates) == 1 else templates or None,
        "containment": containment_mode(),
        "git": git_info(),
        "shard": None if config.shard_spec is None else
        {"index": config.shard_spec[0], "count": config.shard_spec[1], "task_ids": task_ids},
    }
    out.update(syntax_pass_metrics(group_results(results), task_ids, config.ks))
    known = {p.task_id: p.meta["known_failure"] for p in problems if p.meta.get("known_failure")}
    if known:  # documented reasons why a reference fails its own testbench (tasks.rtllm)
        out["known_reference_failures"] = known
    return out


def known_failure_lines(metrics: dict) -> list[str]:
    """Terminal lines giving the documented reason of each reference that failed its testbench."""
    known = metrics.get("known_reference_failures") or {}
    failed = [r["task_id"] for r in metrics.get("reference_failures", [])]
    return [f"  {t}: {known[t]}" for t in failed if t in known]
