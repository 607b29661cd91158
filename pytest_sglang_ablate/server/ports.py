"""Choosing a free port (and the ports the engine opens above it) and waiting for it to be free again."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from .poll import poll_until

SPAN = 256  # the ports a server may open from its HTTP port up (SGLang's DP-attention ports start at + 233)


def ephemeral() -> tuple[int, int] | None:
    """The kernel's range for the local ports of outgoing connections (Linux), or None. A client connection that
    got a port there before the server binds it (SGLang binds its HTTP port only after loading the model) makes
    the launch fail with "address already in use"."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def outside_ephemeral(port_range: tuple[int, int], span: int = SPAN) -> list[tuple[int, int]]:
    """The parts of `port_range` (start inclusive, end exclusive) where a port and the ports above it, `span` in
    all, stay clear of ephemeral(); the whole range when no part is left."""
    low, high = port_range
    kernel = ephemeral()
    if kernel is None:
        return [port_range]
    parts = [(low, min(high, kernel[0] - span + 1)), (max(low, kernel[1] + 1), high)]
    return [(a, b) for a, b in parts if b > a] or [port_range]


def is_free(host: str, port: int) -> bool:
    """Whether a server could listen on the port now. Servers set SO_REUSEADDR (uvicorn does), so
    connections left in TIME_WAIT by the previous server do not count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose(
    host: str,
    extra: Callable[[int], Iterable[int]],
    port_range: tuple[int, int],
    rng: random.Random | None = None,
) -> int:
    """A random port in `port_range`, clear of the kernel's ephemeral ports where the range allows, that is free,
    with every port in `extra(port)` free too."""
    rng = rng or random.Random()
    parts = outside_ephemeral(port_range)
    for _ in range(200):
        port = rng.randrange(*rng.choice(parts))
        if is_free(host, port) and all(is_free(host, p) for p in extra(port)):
            return port
    raise OSError(f"no free port with room above it found on {host} in {port_range}")


def wait_free(host: str, port: int, timeout_s: float) -> bool:
    return poll_until(lambda: is_free(host, port), timeout_s, interval_s=0.02)
