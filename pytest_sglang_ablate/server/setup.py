"""The matrix's `prepare:` commands: run once before the first row's server, each skipped when its output exists."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import AblateError
from ..matrix.parse import PrepareStep


class PrepareError(AblateError):
    """A prepare command failed: no row can run."""


def run(steps: tuple[PrepareStep, ...], env: tuple[tuple[str, str], ...], log: Path) -> list[str]:
    """Run what is still to do; returns a line per step ("ran ..." or "skipped ..."). Raises PrepareError."""
    done = []
    log.parent.mkdir(parents=True, exist_ok=True)
    for step in steps:
        if step.creates and Path(step.creates).exists():
            done.append(f"skipped (exists: {step.creates}): {' '.join(step.run)}")
            continue
        with open(log, "ab") as out:
            out.write(f"$ {' '.join(step.run)}\n".encode())
            out.flush()
            try:
                code = subprocess.run(
                    list(step.run),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **dict(env), **dict(step.env)},
                ).returncode
            except OSError as e:
                raise PrepareError(f"prepare: cannot run {step.run[0]}: {e.strerror or e} (log: {log})") from None
        if code != 0:
            tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
            raise PrepareError(
                f"prepare: `{' '.join(step.run)}` exited with {code}; no row can run. Log {log}:\n" + "\n".join(tail)
            )
        if step.creates and not Path(step.creates).exists():
            raise PrepareError(f"prepare: `{' '.join(step.run)}` succeeded but did not create {step.creates}")
        done.append(f"ran: {' '.join(step.run)}")
    return done
