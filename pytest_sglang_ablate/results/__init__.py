"""Stage 4, results. In: each finished case with its figures. Out: one line per case in results.jsonl (kept even
when pytest is killed) and one pytest-benchmark entry per measured case.

`store` is the results directory, `benchmark` builds pytest-benchmark entries from our samples.
"""
