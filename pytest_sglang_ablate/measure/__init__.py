"""Stage 3, measuring. In: a running server and a workload. Out: `Measured`, the figures with their sources, the
samples for pytest-benchmark, and the reasons (if any) not to trust them.

`loadgen` streams requests and timestamps every chunk, `metrics` turns those timings into the seed page's
figures and latency percentiles, `workloads` runs TPS@1 and one batch level on a server.
"""
