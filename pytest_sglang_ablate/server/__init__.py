"""Stage 2, the server. In: a row and its engine profile. Out: a running, verified `Server`, and later proof that
stopping it left nothing behind.

`launch` starts a row's server under `supervisor` (so nothing outlives pytest), waits until it is ready, checks
its effective config (`config_check`) and stops it; `ports` picks free ports, `gpu` waits for NVML to let go,
`failures` classifies why a server failed, `setup` runs the matrix's one-off `prepare:` commands.
"""
