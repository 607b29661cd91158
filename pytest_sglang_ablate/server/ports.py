"""Choosing a free port (and the ports the engine opens above it) and waiting for it to be free again."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterable

from .poll import poll_until

PORT_RANGE = (20000, 60000)


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
    rng: random.Random | None = None,
    port_range: tuple[int, int] = PORT_RANGE,
) -> int:
    """A random port in `port_range` that is free, with every port in `extra(port)` free too."""
    rng = rng or random.Random()
    for _ in range(200):
        port = rng.randrange(*port_range)
        if is_free(host, port) and all(is_free(host, p) for p in extra(port)):
            return port
    raise OSError(f"no free port with room above it found on {host} in {port_range}")


def wait_free(host: str, port: int, timeout_s: float) -> bool:
    return poll_until(lambda: is_free(host, port), timeout_s, interval_s=0.02)
