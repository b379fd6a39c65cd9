"""Speed and memory benchmarks of the project's way against the obvious baselines (`make bench`).

One module per benchmark (eval_throughput, scoring_throughput, ranking_memory, sampling_throughput,
end_to_end), each with ``TITLE``, ``SCALES`` and ``run(work_dir, workers, **SCALES[scale])`` returning
a `harness.bench.common.BenchResult`; `harness.commands.bench` runs them and writes the run folder.
What each measures, its baseline and its goal: BENCHMARKS.md.
"""
