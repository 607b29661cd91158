"""Stage 1, the matrix. In: a matrix YAML file and the engine version. Out: an `Ablation`, the rows (one server
configuration each, with its argv and env) and the cases (row x workload x level) with their expected failures.

`yamlsource` reads YAML keeping line numbers, `parse` validates it into plain records (every mistake one
`MatrixError` naming file, line and key), `args` merges flag layers into argv, `combinations` generates rows,
`rows` expands them into cases with known-issue rules, and `prepare` does all of that plus the engine's own flag
check, once, before collection.
"""
