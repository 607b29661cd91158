"""The matrix's `prepare:` commands: run once before the first row's server, each skipped when its output exists."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import PrepareError
from ..matrix.model import PrepareStep
from .logfile import tail


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
            raise PrepareError(
                f"prepare: `{' '.join(step.run)}` exited with {code}; no row can run. Log {log}:\n"
                + "\n".join(tail(log, 20))
            )
        if step.creates and not Path(step.creates).exists():
            raise PrepareError(f"prepare: `{' '.join(step.run)}` succeeded but did not create {step.creates}")
        done.append(f"ran: {' '.join(step.run)}")
    return done


class Setup:
    """The matrix's prepare steps, run once before the first row's server; a failure is kept and raised again for
    every later row, so each row reports it and none launches."""

    def __init__(self, steps: tuple[PrepareStep, ...], env: tuple[tuple[str, str], ...], log: Path) -> None:
        self.steps, self.env, self.log = steps, env, log
        self.done = not steps
        self.error: PrepareError | None = None

    def ensure(self) -> None:
        """Run the steps the first time; raise their PrepareError now and on every later call."""
        if not self.done:
            self.done = True
            try:
                run(self.steps, self.env, self.log)
            except PrepareError as e:
                self.error = e
        if self.error is not None:
            raise self.error
