"""Parse and validate a matrix file into the records of `model`; every mistake becomes one MatrixError."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from .. import engines
from ..errors import FailureClass, MatrixError
from .args import Args, ArgValue, normalize_key
from .model import (
    AgreementWorkload,
    BatchWorkload,
    Feature,
    Generator,
    KnownIssue,
    Level,
    Matrix,
    PrepareStep,
    RowSpec,
    ServerSettings,
    SingleWorkload,
    SloWorkload,
    Workload,
)
from .yamlsource import LineDict, LineList, line_of, load

FEATURE_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
ROW_ID = re.compile(r"[A-Za-z0-9_.+-]+\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
FLAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*\Z")
# names pytest gives its own markers: a feature may not shadow them
PYTEST_MARKERS = frozenset(
    {"skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings", "tryfirst", "trylast"}
)


class _Reader:
    """Validation helpers that know the file name, so each error points at file, line and key path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.aliases: dict[str, str] = {}  # the engine's flag aliases, once the engine is known
        self.engine = ""  # the engine, and the endpoint of its native API, likewise
        self.native_path: str | None = None
        self.has_bench = False

    def fail(self, container: Any, key: Any, path: str, message: str) -> MatrixError:
        return MatrixError(self.file, line_of(container, key) if container is not None else None, path, message)

    def mapping(self, value: Any, container: Any, key: Any, path: str) -> LineDict:
        if value is None:
            value = LineDict()
            value.line, value.key_lines = line_of(container, key) or 0, {}
        if not isinstance(value, dict):
            raise self.fail(container, key, path, f"expected a mapping, got {_kind(value)}")
        return value  # type: ignore[return-value]

    def keys(self, value: LineDict, allowed: dict[str, bool], path: str) -> None:
        """`allowed` maps each known key to whether it is required."""
        for key in value:
            if key not in allowed:
                hint = _suggest(str(key), allowed)
                raise self.fail(
                    value, key, _join(path, str(key)), f"unknown key{hint}; expected one of: {', '.join(allowed)}"
                )
        for key, required in allowed.items():
            if required and key not in value:
                raise MatrixError(self.file, value.line or None, path, f"missing required key '{key}'")

    def string(self, value: Any, container: Any, key: Any, path: str, *, allow_number: bool = False) -> str:
        if allow_number and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value:
            raise self.fail(container, key, path, f"expected a non-empty string, got {_kind(value)}")
        return value

    def number(
        self,
        value: Any,
        container: Any,
        key: Any,
        path: str,
        *,
        lo: float,
        hi: float | None = None,
        what: str = "a number",
        inclusive: bool = True,
    ) -> float:
        """A number in [lo, hi] (or (lo, hi) when not `inclusive`); `what` names it in the message."""
        bounds = (f">= {lo:g}" if inclusive else f"> {lo:g}") if hi is None else f"between {lo:g} and {hi:g}"
        expected = f"expected {what} {bounds}"
        integer = what == "an integer"
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise self.fail(container, key, path, f"{expected}, got {_kind(value)}")
        inside = lo <= value and (hi is None or value <= hi) if inclusive else lo < value and (hi is None or value < hi)
        if not inside:
            raise self.fail(container, key, path, f"{expected}, got {value}")
        return value

    def integer(self, value: Any, container: Any, key: Any, path: str, *, minimum: int) -> int:
        return int(self.number(value, container, key, path, lo=minimum, what="an integer"))

    def boolean(self, value: Any, container: Any, key: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(container, key, path, f"expected true or false, got {_kind(value)}")
        return value

    def sequence(self, value: Any, container: Any, key: Any, path: str, *, non_empty: bool = False) -> LineList:
        if not isinstance(value, list):
            raise self.fail(container, key, path, f"expected a list, got {_kind(value)}")
        if non_empty and not value:
            raise self.fail(container, key, path, "expected a non-empty list")
        return value  # type: ignore[return-value]

    def args(self, value: Any, container: Any, key: Any, path: str) -> Args:
        raw = self.mapping(value, container, key, path)
        out: dict[str, ArgValue] = {}
        for flag, v in raw.items():
            p = _join(path, str(flag))
            if not isinstance(flag, str) or not FLAG_NAME.match(normalize_key(flag)):
                raise self.fail(raw, flag, p, "expected a flag name such as tp-size")
            name = normalize_key(flag)
            name = self.aliases.get(name, name)
            if name in out:
                raise self.fail(raw, flag, p, f"the flag '--{name}' is given twice (under two of its names)")
            out[name] = self.arg_value(v, raw, flag, p)
        return tuple(out.items())

    def arg_value(self, v: Any, container: Any, key: Any, path: str) -> ArgValue:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            if not v or not all(isinstance(x, (int, float, str)) and not isinstance(x, bool) for x in v):
                raise self.fail(container, key, path, "expected a non-empty list of strings or numbers")
            return tuple(str(x) for x in v)
        if isinstance(v, dict):
            return json.dumps(v)  # e.g. --cuda-graph-config takes JSON
        raise self.fail(container, key, path, f"expected a flag value, got {_kind(v)}")

    def env(self, value: Any, container: Any, key: Any, path: str) -> tuple[tuple[str, str], ...]:
        raw = self.mapping(value, container, key, path)
        out = []
        for name, v in raw.items():
            p = _join(path, str(name))
            if not isinstance(name, str) or not ENV_NAME.match(name):
                raise self.fail(raw, name, p, "expected an environment variable name")
            if isinstance(v, bool) or not isinstance(v, (str, int, float)):
                raise self.fail(raw, name, p, f'expected a string or number (quote it: "1"), got {_kind(v)}')
            out.append((name, str(v)))
        return tuple(out)

    def feature_list(
        self, value: Any, container: Any, key: Any, path: str, known: tuple[str, ...], what: str = "feature"
    ) -> tuple[str, ...]:
        items = self.sequence(value, container, key, path)
        seen: list[str] = []
        for i, name in enumerate(items):
            p = f"{path}[{i}]"
            if not isinstance(name, str):
                raise self.fail(items, i, p, f"expected a {what} name, got {_kind(name)}")
            if name not in known:
                raise self.fail(
                    items,
                    i,
                    p,
                    f"unknown {what} '{name}'{_suggest(name, known)}; {what}s are: {', '.join(known) or '(none)'}",
                )
            if name in seen:
                raise self.fail(items, i, p, f"{what} '{name}' is listed twice")
            seen.append(name)
        return tuple(seen)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}" if value else "an empty string"
    return f"{type(value).__name__} {value!r}"


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


TOP_KEYS = {
    "name": False,
    "engine": False,
    "launch": False,
    "model": True,
    "args": False,
    "env": False,
    "features": False,
    "rows": False,
    "generate": False,
    "known_issues": False,
    "workloads": True,
    "server": False,
    "api_key": False,
    "secrets": False,
    "prepare": False,
    "nodes": False,
    "gpus": False,
    "launches": False,
    "launcher": False,
    "hosts": False,
    "ssh_options": False,
}
SERVER_KEYS = {
    "host": False,
    "startup_timeout": False,
    "shutdown_grace": False,
    "gpu_release_timeout": False,
    "oom_retry_mem_fraction": False,
    "cpus": False,
}
ROW_KEYS = {
    "features": False,
    "id": False,
    "args": False,
    "env": False,
    "workloads": False,
    "note": False,
    "nodes": False,
    "gpus": False,
    "launches": False,
}
GENERATE_KEYS = {
    "nodes": False,
    "gpus": False,
    "launches": False,
    "mode": True,
    "features": False,
    "exclude_known_issues": False,
    "args": False,
    "env": False,
    "workloads": False,
    "note": False,
}
SINGLE_KEYS = {
    "kind": True,
    "prompt": True,
    "expect": False,
    "max_tokens": False,
    "repeat": False,
    "request_timeout": False,
    "api": False,
    "client_cpus": False,
}
BATCH_KEYS = {
    "kind": True,
    "input_len": True,
    "output_len": True,
    "levels": True,
    "warmup": False,
    "seed": False,
    "repeat": False,
    "cold_start_burst": False,
    "max_failed": False,
    "token_ids": False,
    "token_tolerance": False,
    "request_timeout": False,
    "client_cpu_limit": False,
    "loop_lag_limit_ms": False,
    "client_processes": False,
    "client_cpus": False,
    "api": False,
    "client": False,
    "cross_check": False,
    "cross_check_tolerance": False,
}
SLO_KEYS = {
    **{k: v for k, v in BATCH_KEYS.items() if k not in ("levels", "cross_check", "cross_check_tolerance", "client")},
    "client_processes": False,
    "slo": True,
    "variable": False,
    "range": False,
    "resolution": False,
    "requests": False,
    "arrival": False,
    "max_in_flight": False,
}
AGREEMENT_KEYS = {
    "kind": True,
    "prompts": True,
    "seed": False,
    "max_tokens": False,
    "top_k": False,
    "baseline": False,
    "min_identical": False,
    "min_close": False,
    "request_timeout": False,
}
# what every row of an agreement workload shares with its reference: the requests, and which row is the reference
AGREEMENT_SHARED = {"prompts", "seed", "max_tokens", "top_k", "baseline"}
SLO_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
SLO_PERCENTILES = ("mean", "p50", "p90", "p99")
LEVEL_KEYS = {"concurrency": False, "requests": False, "repeat": False, "cross_check_tolerance": False}
RATE_KEYS = {"rate": True, "requests": True, "arrival": False, "max_in_flight": False, "repeat": False}
OPEN_LOOP_CAP = 1024  # a rate level's default cap on requests in flight


def load_matrix(path: Path, shown_as: str | None = None) -> Matrix:
    """Read and validate a matrix file; raises MatrixError naming file, line and key path."""
    shown = shown_as or str(path)
    data = load(path, shown)
    r = _Reader(shown)
    if not isinstance(data, dict):
        raise MatrixError(shown, None, "", f"expected a mapping of matrix keys at the top, got {_kind(data)}")
    r.keys(data, TOP_KEYS, "")  # type: ignore[arg-type]
    top: LineDict = data  # type: ignore[assignment]

    name = r.string(top.get("name", path.stem), top, "name", "name")
    engine = r.string(top.get("engine", "sglang"), top, "engine", "engine")
    if engine not in engines.PROFILES:
        raise r.fail(
            top,
            "engine",
            "engine",
            f"unknown engine '{engine}'{_suggest(engine, engines.PROFILES)}; "
            f"expected one of: {', '.join(engines.PROFILES)}",
        )
    profile = engines.get(engine)
    r.aliases = profile.aliases
    r.engine, r.native_path, r.has_bench = engine, profile.native_path, profile.bench_client is not None
    if "launch" in top:
        launch_raw = top["launch"]
        if isinstance(launch_raw, str):
            raise r.fail(
                top,
                "launch",
                "launch",
                "expected a list of strings (argv, never a shell line), e.g. [python3, -m, sglang.launch_server]",
            )
        items = r.sequence(launch_raw, top, "launch", "launch", non_empty=True)
        launch = tuple(r.string(v, items, i, f"launch[{i}]", allow_number=True) for i, v in enumerate(items))
    else:
        launch = tuple(profile.default_launch())
    model = r.string(top.get("model"), top, "model", "model")
    args = r.args(top.get("args"), top, "args", "args")
    env = r.env(top.get("env"), top, "env", "env")

    features = _features(r, top)
    names = tuple(f.name for f in features)
    workloads = _workloads(r, top)
    known_issues = _known_issues(r, top, names, engine, workloads)
    rows = _rows(r, top, names, workloads)
    generators = _generators(r, top, names, workloads)
    if not rows and not generators:
        raise r.fail(top, "rows", "rows", "expected at least one row (or a `generate:` section)")
    return Matrix(
        file=shown,
        name=name,
        engine=engine,
        launch=launch,
        model=model,
        args=args,
        env=env,
        features=features,
        rows=rows,
        generators=generators,
        known_issues=known_issues,
        workloads=workloads,
        server=_server(r, top),
        path=path,
        api_key=None if top.get("api_key") is None else r.string(top["api_key"], top, "api_key", "api_key"),
        secrets=frozenset(n.lower().replace("_", "-") for n in _names(r, top, "secrets")),
        prepare=_prepare(r, top),
        nodes=_count(r, top, "nodes", ""),
        gpus=_count(r, top, "gpus", ""),
        launches=_count(r, top, "launches", ""),
        launcher=_launcher(r, top),
        hosts=tuple(_names(r, top, "hosts")),
        ssh_options=tuple(_names(r, top, "ssh_options")),
    )


def _launcher(r: _Reader, top: LineDict) -> str:
    from ..server.launchers import NAMES

    value = top.get("launcher", "local")
    if value not in NAMES:
        raise r.fail(top, "launcher", "launcher", f"expected one of {', '.join(NAMES)}, got {_kind(value)}")
    return str(value)


def _prepare(r: _Reader, top: LineDict) -> tuple[PrepareStep, ...]:
    if top.get("prepare") is None:
        return ()
    items = r.sequence(top["prepare"], top, "prepare", "prepare")
    steps = []
    for i, item in enumerate(items):
        p = f"prepare[{i}]"
        body = r.mapping(item, items, i, p)
        r.keys(body, {"run": True, "creates": False, "env": False}, p)
        if isinstance(body["run"], str):
            raise r.fail(body, "run", f"{p}.run", "expected a list of strings (argv, never a shell line)")
        argv = r.sequence(body["run"], body, "run", f"{p}.run", non_empty=True)
        steps.append(
            PrepareStep(
                run=tuple(r.string(v, argv, j, f"{p}.run[{j}]", allow_number=True) for j, v in enumerate(argv)),
                creates=None
                if body.get("creates") is None
                else r.string(body["creates"], body, "creates", f"{p}.creates"),
                env=r.env(body.get("env"), body, "env", f"{p}.env"),
            )
        )
    return tuple(steps)


def _names(r: _Reader, top: LineDict, key: str) -> list[str]:
    if top.get(key) is None:
        return []
    items = r.sequence(top[key], top, key, key)
    return [r.string(v, items, i, f"{key}[{i}]") for i, v in enumerate(items)]


def _seconds(r: _Reader, body: LineDict, key: str, default: float | None, minimum: float) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    return float(r.number(value, body, key, f"server.{key}", lo=minimum, what="a number of seconds"))


def _server(r: _Reader, top: LineDict) -> ServerSettings:
    body = r.mapping(top.get("server"), top, "server", "server")
    r.keys(body, SERVER_KEYS, "server")
    fractions: list[float] = []
    if body.get("oom_retry_mem_fraction") is not None:
        items = r.sequence(
            body["oom_retry_mem_fraction"],
            body,
            "oom_retry_mem_fraction",
            "server.oom_retry_mem_fraction",
            non_empty=True,
        )
        for i, f in enumerate(items):
            p = f"server.oom_retry_mem_fraction[{i}]"
            r.number(f, items, i, p, lo=0, hi=1, what="a fraction", inclusive=False)
            if fractions and f >= fractions[-1]:
                raise r.fail(items, i, p, "expected each retry value to be lower than the one before")
            fractions.append(float(f))
    default = ServerSettings()
    return ServerSettings(
        host=r.string(body.get("host", default.host), body, "host", "server.host"),
        startup_timeout_s=_seconds(r, body, "startup_timeout", None, 1),
        shutdown_grace_s=_seconds(r, body, "shutdown_grace", default.shutdown_grace_s, 0) or 0.0,
        gpu_release_timeout_s=_seconds(r, body, "gpu_release_timeout", default.gpu_release_timeout_s, 0) or 0.0,
        oom_retry_mem_fraction=tuple(fractions),
        cpus=_cpus(r, body, "server", key="cpus"),
    )


def _features(r: _Reader, top: LineDict) -> tuple[Feature, ...]:
    raw = r.mapping(top.get("features"), top, "features", "features")
    out = []
    for fname, spec in raw.items():
        p = f"features.{fname}"
        if not isinstance(fname, str) or not FEATURE_NAME.match(fname):
            raise r.fail(
                raw, fname, p, "expected a feature name: lowercase letters, digits and _, starting with a letter"
            )
        if fname in PYTEST_MARKERS:
            raise r.fail(raw, fname, p, f"'{fname}' is a pytest marker; choose another feature name")
        body = r.mapping(spec, raw, fname, p)
        on = off = None
        description = ""
        for key, value in body.items():
            if key in (True, "on"):
                on = r.args(value, body, key, f"{p}.on")
            elif key in (False, "off"):
                off = r.args(value, body, key, f"{p}.off")
            elif key == "description":
                description = r.string(value, body, key, f"{p}.description")
            else:
                raise r.fail(body, key, f"{p}.{key}", "unknown key; expected on, off or description")
        if not on and not off:
            raise r.fail(
                raw,
                fname,
                p,
                "expected `on:` and/or `off:` server args (a feature that changes no flag measures nothing)",
            )
        out.append(Feature(fname, on or (), off or (), description))
    return tuple(out)


def _level(r: _Reader, value: Any, container: Any, key: Any, path: str) -> Level:
    body = r.mapping(value, container, key, path)
    if "rate" in body:  # open loop: users arrive at a rate, whatever the server does
        r.keys(body, RATE_KEYS, path)
        rate = float(r.number(body["rate"], body, "rate", f"{path}.rate", lo=0.001))
        n = r.integer(body["requests"], body, "requests", f"{path}.requests", minimum=1)
        cap = r.integer(
            body.get("max_in_flight", OPEN_LOOP_CAP), body, "max_in_flight", f"{path}.max_in_flight", minimum=1
        )
        arrival = body.get("arrival", "poisson")
        if arrival not in ("poisson", "constant"):
            raise r.fail(body, "arrival", f"{path}.arrival", f"expected poisson or constant, got {_kind(arrival)}")
        repeat = (
            None
            if body.get("repeat") is None
            else r.integer(body["repeat"], body, "repeat", f"{path}.repeat", minimum=1)
        )
        return Level(cap, n, repeat, None, rate, str(arrival))
    if "concurrency" not in body:
        raise MatrixError(
            r.file, body.line or None, path, "missing required key 'concurrency' (or 'rate', for arrivals per second)"
        )
    r.keys(body, LEVEL_KEYS, path)
    c = r.integer(body["concurrency"], body, "concurrency", f"{path}.concurrency", minimum=1)
    n = r.integer(body.get("requests", 2 * c), body, "requests", f"{path}.requests", minimum=1)
    if n < c:
        raise r.fail(body, "requests", f"{path}.requests", f"expected at least concurrency ({c}) requests, got {n}")
    repeat = (
        None if body.get("repeat") is None else r.integer(body["repeat"], body, "repeat", f"{path}.repeat", minimum=1)
    )
    tolerance = (
        None if body.get("cross_check_tolerance") is None else _number(r, body, "cross_check_tolerance", path, 0, 0, 1)
    )
    return Level(c, n, repeat, tolerance)


def _number(
    r: _Reader, body: LineDict, key: str, path: str, default: float, lo: float, hi: float | None = None
) -> float:
    return float(r.number(body.get(key, default), body, key, f"{path}.{key}", lo=lo, hi=hi))


def _cpus(r: _Reader, body: LineDict, path: str, key: str = "client_cpus") -> tuple[int, ...]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise r.fail(
            body,
            key,
            f"{path}.{key}",
            f"expected a list of CPU numbers such as [1], got {_kind(value)}",
        )
    return tuple(value)


def _token_ids(r: _Reader, body: LineDict, path: str) -> tuple[int, int]:
    value = body.get("token_ids", [100, 1000])
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
    if not ok or not 0 <= value[0] < value[1]:
        raise r.fail(
            body,
            "token_ids",
            f"{path}.token_ids",
            f"expected [lo, hi] with 0 <= lo < hi (prompt token ids are drawn from it), got {_kind(value)}",
        )
    return (value[0], value[1])


def _workload(r: _Reader, name: str, body: LineDict, path: str) -> Workload:
    kind = body.get("kind")
    if kind == "single":
        r.keys(body, SINGLE_KEYS, path)
        expect = body.get("expect")
        return SingleWorkload(
            name=name,
            prompt=r.string(body["prompt"], body, "prompt", f"{path}.prompt"),
            expect=None if expect is None else r.string(expect, body, "expect", f"{path}.expect", allow_number=True),
            max_tokens=r.integer(body.get("max_tokens", 2048), body, "max_tokens", f"{path}.max_tokens", minimum=1),
            repeat=r.integer(body.get("repeat", 1), body, "repeat", f"{path}.repeat", minimum=1),
            request_timeout=_number(r, body, "request_timeout", path, 600.0, 1),
            client_cpus=_cpus(r, body, path),
            api=_api(r, body, path),
        )
    if kind == "batch":
        r.keys(body, BATCH_KEYS, path)
        levels_raw = r.sequence(body["levels"], body, "levels", f"{path}.levels", non_empty=True)
        levels: list[Level] = []
        for i, lv in enumerate(levels_raw):
            level = _level(r, lv, levels_raw, i, f"{path}.levels[{i}]")
            if any(x.label == level.label for x in levels):
                what = f"rate {level.rate:g}" if level.rate is not None else f"concurrency {level.concurrency}"
                raise r.fail(levels_raw, i, f"{path}.levels[{i}]", f"{what} is listed twice")
            levels.append(level)
        warmup = body.get("warmup")
        workload = BatchWorkload(
            name=name,
            input_len=r.integer(body["input_len"], body, "input_len", f"{path}.input_len", minimum=1),
            output_len=r.integer(body["output_len"], body, "output_len", f"{path}.output_len", minimum=1),
            levels=tuple(levels),
            warmup=None if warmup is None else _level(r, warmup, body, "warmup", f"{path}.warmup"),
            seed=r.integer(body.get("seed", 0), body, "seed", f"{path}.seed", minimum=0),
            repeat=r.integer(body.get("repeat", 1), body, "repeat", f"{path}.repeat", minimum=1),
            cold_start_burst=r.boolean(
                body.get("cold_start_burst", True), body, "cold_start_burst", f"{path}.cold_start_burst"
            ),
            max_failed=_number(r, body, "max_failed", path, 0.0, 0, 1),
            token_ids=_token_ids(r, body, path),
            token_tolerance=_number(r, body, "token_tolerance", path, 0.0, 0, 1),
            request_timeout=_number(r, body, "request_timeout", path, 600.0, 1),
            client_cpu_limit=_number(r, body, "client_cpu_limit", path, 0.9, 0, 64),
            loop_lag_limit_ms=_number(r, body, "loop_lag_limit_ms", path, 50.0, 0),
            client_processes=r.integer(
                body.get("client_processes", 1), body, "client_processes", f"{path}.client_processes", minimum=1
            ),
            client_cpus=_cpus(r, body, path),
            api=_api(r, body, path),
            client=_client(r, body, path),
            cross_check=_cross_check(r, body, path),
            cross_check_tolerance=_number(r, body, "cross_check_tolerance", path, 0.05, 0, 1),
        )
        if any(level.rate is not None for level in levels):
            unsupported = [
                f"{key}: {body[key]}"
                for key, default in (("client_processes", 1), ("client", "ours"), ("cross_check", None))
                if body.get(key, default) != default
            ]
            if unsupported:
                raise r.fail(
                    body,
                    "levels",
                    f"{path}.levels",
                    f"a rate level (open loop) runs in one client process of ours, without a cross-check; "
                    f"this workload sets {', '.join(unsupported)}: give the rate levels a workload of their own",
                )
        return workload
    if kind == "slo":
        return _slo(r, name, body, path)
    if kind == "agreement":
        return _agreement(r, name, body, path)
    raise r.fail(
        body,
        "kind" if "kind" in body else None,
        f"{path}.kind",
        f"expected kind: single, batch, slo or agreement, got {_kind(kind)}",
    )


def _agreement(r: _Reader, name: str, body: LineDict, path: str) -> AgreementWorkload:
    r.keys(body, AGREEMENT_KEYS, path)
    raw = body["prompts"]
    if isinstance(raw, int) and not isinstance(raw, bool):  # a count: that many prompts from a seeded generator
        count = r.integer(raw, body, "prompts", f"{path}.prompts", minimum=1)
        seed = r.integer(body.get("seed", 0), body, "seed", f"{path}.seed", minimum=0)
        prompts = generated_prompts(count, seed)
    elif isinstance(raw, list):
        listed = r.sequence(raw, body, "prompts", f"{path}.prompts", non_empty=True)
        prompts = tuple(r.string(p, listed, i, f"{path}.prompts[{i}]") for i, p in enumerate(listed))
    else:
        raise r.fail(
            body, "prompts", f"{path}.prompts", f"expected a list of prompts or a count to generate, got {_kind(raw)}"
        )
    baseline = body.get("baseline")
    min_identical = _number(r, body, "min_identical", path, 0.0, 0, 1)
    min_close = _number(r, body, "min_close", path, 1.0, 0, 1)
    if min_identical > min_close:
        raise r.fail(
            body,
            "min_identical",
            f"{path}.min_identical",
            f"expected at most min_close ({min_close:g}): an identical output is a close one, got {min_identical:g}",
        )
    return AgreementWorkload(
        name=name,
        prompts=prompts,
        max_tokens=r.integer(body.get("max_tokens", 32), body, "max_tokens", f"{path}.max_tokens", minimum=1),
        top_k=int(r.number(body.get("top_k", 5), body, "top_k", f"{path}.top_k", lo=1, hi=20, what="an integer")),
        baseline=None if baseline is None else r.string(baseline, body, "baseline", f"{path}.baseline"),
        min_identical=min_identical,
        min_close=min_close,
        request_timeout=_number(r, body, "request_timeout", path, 600.0, 1),
    )


WORDS = [
    "graphs",
    "rivers",
    "engines",
    "tea",
    "winter",
    "lamps",
    "orbits",
    "harbors",
    "violins",
    "clay",
    "maps",
    "bridges",
    "gardens",
    "salt",
    "clocks",
    "wolves",
    "glass",
    "ferns",
    "tides",
    "copper",
]


def generated_prompts(count: int, seed: int) -> tuple[str, ...]:
    """`count` short prompts from a seeded generator: the same seed gives the same prompts on every machine."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a, b = rng.sample(WORDS, 2)
        out.append(f"Write a short story about {a} and {b}. Once upon a time,")
    return tuple(out)


def _slo(r: _Reader, name: str, body: LineDict, path: str) -> SloWorkload:
    r.keys(body, SLO_KEYS, path)
    if body.get("client_processes", 1) != 1:
        raise r.fail(
            body, "client_processes", f"{path}.client_processes", "an slo workload's probes run in one client process"
        )
    batch_body = LineDict({k: v for k, v in body.items() if k in BATCH_KEYS and k != "kind"})
    batch_body.line, batch_body.key_lines = body.line, body.key_lines
    probe = LineDict({"concurrency": 1})  # a placeholder: the search makes the probes' levels
    probe.line, probe.key_lines = body.line, {}
    levels = LineList([probe])
    levels.line, levels.item_lines = body.line, [body.line]
    batch_body["kind"], batch_body["levels"] = "batch", levels
    batch = _workload(r, name, batch_body, path)
    assert isinstance(batch, BatchWorkload)
    targets_raw = r.mapping(body["slo"], body, "slo", f"{path}.slo")
    targets = []
    for metric, pcts in targets_raw.items():
        where = f"{path}.slo.{metric}"
        if metric not in SLO_METRICS:
            raise r.fail(targets_raw, metric, where, f"expected one of {', '.join(SLO_METRICS)}, got {_kind(metric)}")
        pct_map = r.mapping(pcts, targets_raw, metric, where)
        limits = []
        for pct, limit in pct_map.items():
            if pct not in SLO_PERCENTILES:
                raise r.fail(
                    pct_map, pct, f"{where}.{pct}", f"expected one of {', '.join(SLO_PERCENTILES)}, got {_kind(pct)}"
                )
            limits.append((str(pct), float(r.number(limit, pct_map, pct, f"{where}.{pct}", lo=0))))
        if not limits:
            raise r.fail(targets_raw, metric, where, "expected at least one percentile target, e.g. {p99: 2000}")
        targets.append((str(metric), tuple(limits)))
    if not targets:
        raise r.fail(body, "slo", f"{path}.slo", "expected at least one target, e.g. {ttft_ms: {p99: 2000}}")
    variable = body.get("variable", "rate")
    if variable not in ("rate", "concurrency"):
        raise r.fail(body, "variable", f"{path}.variable", f"expected rate or concurrency, got {_kind(variable)}")
    span = body.get("range", [1, 256])
    ok = (
        isinstance(span, list)
        and len(span) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in span)
    )
    if not ok or not 0 < span[0] <= span[1]:
        raise r.fail(body, "range", f"{path}.range", f"expected [low, high] with 0 < low <= high, got {_kind(span)}")
    arrival = body.get("arrival", "poisson")
    if arrival not in ("poisson", "constant"):
        raise r.fail(body, "arrival", f"{path}.arrival", f"expected poisson or constant, got {_kind(arrival)}")
    return SloWorkload(
        name=name,
        batch=batch,
        targets=tuple(targets),
        variable=str(variable),
        low=float(span[0]),
        high=float(span[1]),
        resolution=_number(r, body, "resolution", path, 0.1, 0.001, 1),
        requests=r.integer(body.get("requests", 200), body, "requests", f"{path}.requests", minimum=1),
        arrival=str(arrival),
        max_in_flight=r.integer(
            body.get("max_in_flight", OPEN_LOOP_CAP), body, "max_in_flight", f"{path}.max_in_flight", minimum=1
        ),
    )


def _api(r: _Reader, body: LineDict, path: str) -> str:
    api = body.get("api", "openai")
    if api not in ("openai", "native"):
        raise r.fail(body, "api", f"{path}.api", f"expected openai or native, got {_kind(api)}")
    if api == "native" and r.native_path is None:
        raise r.fail(
            body, "api", f"{path}.api", f"expected openai: engine {r.engine} has no native API here (sglang has)"
        )
    return str(api)


def _client(r: _Reader, body: LineDict, path: str) -> str:
    value = body.get("client", "ours")
    if value not in ("ours", "openai"):
        raise r.fail(body, "client", f"{path}.client", f"expected ours or openai, got {_kind(value)}")
    if value == "openai" and body.get("api") == "native":
        raise r.fail(body, "client", f"{path}.client", "expected ours: client openai speaks the OpenAI API only")
    return str(value)


def _cross_check(r: _Reader, body: LineDict, path: str) -> str | None:
    value = body.get("cross_check")
    if value is None:
        return None
    if value != "bench_serving":
        raise r.fail(body, "cross_check", f"{path}.cross_check", f"expected bench_serving, got {_kind(value)}")
    if not r.has_bench:
        raise r.fail(body, "cross_check", f"{path}.cross_check", f"engine {r.engine} has no bench_serving (sglang has)")
    return str(value)


def _workloads(r: _Reader, top: LineDict) -> tuple[Workload, ...]:
    raw = r.mapping(top.get("workloads"), top, "workloads", "workloads")
    if not raw:
        raise r.fail(top, "workloads", "workloads", "expected at least one workload")
    out = []
    for wname, body in raw.items():
        p = f"workloads.{wname}"
        if not isinstance(wname, str) or not FEATURE_NAME.match(wname):
            raise r.fail(
                raw, wname, p, "expected a workload name: lowercase letters, digits and _, starting with a letter"
            )
        out.append(_workload(r, wname, r.mapping(body, raw, wname, p), p))
    return tuple(out)


def _raw_workload(top: LineDict, name: str) -> LineDict:
    return top["workloads"][name]  # type: ignore[no-any-return]


def _row_workloads(
    r: _Reader, top: LineDict, value: Any, container: Any, key: Any, path: str, workloads: tuple[Workload, ...]
) -> tuple[Workload, ...]:
    """A row's `workloads:`: a list of names, or a mapping of name to overrides merged key by key."""
    known = [w.name for w in workloads]
    if isinstance(value, list):
        wanted = {n: None for n in r.feature_list(value, container, key, path, tuple(known), "workload")}
    else:
        body = r.mapping(value, container, key, path)
        wanted = dict(body)
    if not wanted:
        raise r.fail(container, key, path, "expected at least one workload for the row")
    out = []
    for wname, override in wanted.items():
        p = f"{path}.{wname}"
        if wname not in known:
            raise r.fail(
                value,
                wname,
                p,
                f"unknown workload '{wname}'{_suggest(str(wname), known)}; workloads are: {', '.join(known)}",
            )
        base = _raw_workload(top, wname)
        if override is None:
            out.append(next(w for w in workloads if w.name == wname))
            continue
        over = r.mapping(override, value, wname, p)
        if "kind" in over and over["kind"] != base.get("kind"):
            raise r.fail(over, "kind", f"{p}.kind", f"a row cannot change a workload's kind (it is {base.get('kind')})")
        if base.get("kind") == "agreement":  # every row answers the same prompts the same way, or none compares
            fixed = next((k for k in over if k in AGREEMENT_SHARED), None)
            if fixed is not None:
                raise r.fail(
                    over,
                    fixed,
                    f"{p}.{fixed}",
                    f"a row cannot change an agreement workload's {fixed}: every row is compared with the reference "
                    f"on the same requests; set it on the workload (rows may change only "
                    f"{', '.join(sorted(set(AGREEMENT_KEYS) - AGREEMENT_SHARED - {'kind'}))})",
                )
        # a row's `key: null` sets that key back to its default (no warmup, no expected answer, ...)
        merged = LineDict({k: v for k, v in {**base, **over}.items() if v is not None})
        merged.line = over.line
        merged.key_lines = {**{k: base.key_lines[k] for k in base}, **over.key_lines}
        out.append(_workload(r, wname, merged, p))
    return tuple(out)


def _row_body(
    r: _Reader, top: LineDict, body: LineDict, path: str, names: tuple[str, ...], workloads: tuple[Workload, ...]
) -> dict[str, Any]:
    """The keys a row and a generator share."""
    return {
        "args": r.args(body.get("args"), body, "args", f"{path}.args"),
        "env": r.env(body.get("env"), body, "env", f"{path}.env"),
        "workloads": None
        if body.get("workloads") is None
        else _row_workloads(r, top, body["workloads"], body, "workloads", f"{path}.workloads", workloads),
        "note": "" if body.get("note") is None else r.string(body["note"], body, "note", f"{path}.note"),
        "nodes": _count(r, body, "nodes", path),
        "gpus": _count(r, body, "gpus", path),
        "launches": _count(r, body, "launches", path),
    }


def _count(r: _Reader, body: LineDict, key: str, path: str) -> int | None:
    if body.get(key) is None:
        return None
    return r.integer(body[key], body, key, _join(path, key), minimum=1)


def _rows(r: _Reader, top: LineDict, names: tuple[str, ...], workloads: tuple[Workload, ...]) -> tuple[RowSpec, ...]:
    if "rows" not in top:
        return ()
    raw = r.sequence(top["rows"], top, "rows", "rows")
    if not raw and "generate" not in top:
        raise r.fail(top, "rows", "rows", "expected at least one row")
    out: list[RowSpec] = []
    for i, item in enumerate(raw):
        p = f"rows[{i}]"
        if isinstance(item, list):
            feats = r.feature_list(item, raw, i, p, names)
            row = RowSpec(frozenset(feats), where=p, line=line_of(raw, i))
        elif isinstance(item, dict):
            body: LineDict = item  # type: ignore[assignment]
            r.keys(body, ROW_KEYS, p)
            feats = r.feature_list(body.get("features", LineList()), body, "features", f"{p}.features", names)
            row_id = body.get("id")
            if row_id is not None:
                row_id = r.string(row_id, body, "id", f"{p}.id", allow_number=True)
                if not ROW_ID.match(row_id):
                    raise r.fail(
                        body,
                        "id",
                        f"{p}.id",
                        "expected letters, digits and _ . + - only (ids go into test names and -k expressions)",
                    )
            row = RowSpec(
                frozenset(feats),
                id=row_id,
                where=p,
                line=line_of(raw, i),
                **_row_body(r, top, body, p, names, workloads),
            )
        else:
            raise r.fail(
                raw, i, p, f"expected a list of feature names or a mapping with `features:`, got {_kind(item)}"
            )
        for prev in out:
            if (prev.features, prev.args, prev.env, prev.workloads) == (row.features, row.args, row.env, row.workloads):
                raise r.fail(raw, i, p, f"duplicate row: the same as {prev.where}")
        out.append(row)
    return tuple(out)


def _generators(
    r: _Reader, top: LineDict, names: tuple[str, ...], workloads: tuple[Workload, ...]
) -> tuple[Generator, ...]:
    if top.get("generate") is None:
        return ()
    raw = top["generate"]
    items: list[tuple[Any, Any, Any, str]]
    if isinstance(raw, list):
        items = [(g, raw, i, f"generate[{i}]") for i, g in enumerate(raw)]
    else:
        items = [(raw, top, "generate", "generate")]
    out = []
    for value, container, key, p in items:
        body = r.mapping(value, container, key, p)
        r.keys(body, GENERATE_KEYS, p)
        mode = body["mode"]
        if mode not in ("product", "pairwise"):
            raise r.fail(body, "mode", f"{p}.mode", f"expected product or pairwise, got {_kind(mode)}")
        feats = (
            names
            if "features" not in body
            else r.feature_list(body["features"], body, "features", f"{p}.features", names)
        )
        if not feats:
            raise r.fail(body, "features", f"{p}.features", "expected at least one feature to vary")
        excl = r.boolean(
            body.get("exclude_known_issues", False), body, "exclude_known_issues", f"{p}.exclude_known_issues"
        )
        template = RowSpec(frozenset(), where=p, line=body.line, **_row_body(r, top, body, p, names, workloads))
        out.append(Generator(mode, tuple(feats), excl, template))
    return tuple(out)


def _version_range(r: _Reader, value: Any, container: Any, key: Any, path: str) -> SpecifierSet:
    text = r.string(value, container, key, path, allow_number=True).strip()
    if not text:
        raise r.fail(container, key, path, 'expected a version range such as "<0.4.4", got an empty string')
    if text[0].isdigit():
        text = "==" + text  # a bare version means exactly that version
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise r.fail(
            container, key, path, f'expected a version range such as "<0.4.4" or ">=0.4.4,<0.5", got {value!r}'
        ) from None


def _known_issues(
    r: _Reader, top: LineDict, names: tuple[str, ...], engine: str, workloads: tuple[Workload, ...]
) -> tuple[KnownIssue, ...]:
    if top.get("known_issues") is None:
        return ()
    raw = r.sequence(top["known_issues"], top, "known_issues", "known_issues")
    allowed = {
        "when": True,
        "reason": True,
        engine: False,
        "workloads": False,
        "min_concurrency": False,
        "match": False,
        "class": False,
    }
    out = []
    for i, item in enumerate(raw):
        p = f"known_issues[{i}]"
        body = r.mapping(item, raw, i, p)
        r.keys(body, allowed, p)
        when = r.feature_list(body["when"], body, "when", f"{p}.when", names)
        if not when:
            raise r.fail(body, "when", f"{p}.when", "expected at least one feature")
        wl = None
        if body.get("workloads") is not None:
            known_wl = tuple(w.name for w in workloads)
            wl = frozenset(r.feature_list(body["workloads"], body, "workloads", f"{p}.workloads", known_wl, "workload"))
            if not wl:
                raise r.fail(
                    body,
                    "workloads",
                    f"{p}.workloads",
                    "expected at least one workload (leave the key out for every workload)",
                )
        mc = body.get("min_concurrency")
        out.append(
            KnownIssue(
                when=frozenset(when),
                reason=r.string(body["reason"], body, "reason", f"{p}.reason"),
                versions=None
                if body.get(engine) is None
                else _version_range(r, body[engine], body, engine, f"{p}.{engine}"),
                workloads=wl,
                min_concurrency=None
                if mc is None
                else r.integer(mc, body, "min_concurrency", f"{p}.min_concurrency", minimum=1),
                match=_regex(r, body, "match", f"{p}.match"),
                failure_class=_failure_class(r, body, f"{p}.class"),
                where=p,
            )
        )
    return tuple(out)


def _regex(r: _Reader, body: LineDict, key: str, path: str) -> str | None:
    if body.get(key) is None:
        return None
    text = r.string(body[key], body, key, path)
    try:
        re.compile(text)
    except re.error as e:
        raise r.fail(
            body, key, path, f"expected a regular expression (searched in the failure's evidence): {e}"
        ) from None
    return text


def _failure_class(r: _Reader, body: LineDict, path: str) -> str | None:
    if body.get("class") is None:
        return None
    names = [c.value for c in FailureClass]
    value = r.string(body["class"], body, "class", path)
    if value not in names:
        raise r.fail(
            body,
            "class",
            path,
            f"unknown failure class '{value}'{_suggest(value, names)}; expected one of: {', '.join(names)}",
        )
    return value
