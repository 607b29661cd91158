"""Flags are checked by the engine's own argument parser before any server starts.

A stand-in `sglang` package (installed metadata + `ServerArgs.add_cli_args`, as SGLang 0.4 and 0.5 have it)
plays the engine here; tests/test_sglang_parser.py checks the shipped matrices against the real parsers. pytest
runs in-process: the probe is the only child process, and it ends before the test does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FAKE_SERVER_ARGS = """
import logging

class ServerArgs:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
        if self.model_path.startswith("made/"):  # as SGLang reads the model's config.json before its checks
            open(self.model_path + "/config.json").close()
        # as SGLang 0.5.15 refuses some combinations after parsing (NEXTN with flex attention)
        assert not (self.speculative_algorithm and self.mem_fraction_static == 0.5), "NEXTN refuses 0.5"

    @classmethod
    def from_cli_args(cls, args):
        return cls(**vars(args))

    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--model-path", required=True)
        parser.add_argument("--tp-size", type=int)
        parser.add_argument("--mem-fraction-static", type=float)
        parser.add_argument("--disable-radix-cache", action="store_true")
        parser.add_argument("--speculative-algorithm")
        parser.add_argument("--speculative-num-steps", type=int)
        parser.add_argument("--disable-cuda-graph", action=Deprecated, nargs=0)

import argparse
class Deprecated(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        logging.getLogger("sglang").warning("'%s' is deprecated", option_string)
"""

MATRIX = """
model: m
launch: [{python}, -m, sglang.launch_server]
args: {{tp-size: 2}}
features:
  cuda_graph: {{off: {{disable-cuda-graph: true}}}}
  nextn: {{on: {{speculative-algorithm: NEXTN}}}}
  flashinfer_mla: {{on: {{enable-flashinfer-mla: true}}}}
rows:
  - [cuda_graph]
  - [cuda_graph, flashinfer_mla]
  - [nextn]
known_issues:
  - {{when: [nextn], reason: "old spec decoding", sglang: "<0.4.4"}}
workloads:
  single: {{kind: single, prompt: hi}}
"""


def fake_sglang(root: Path, version: str) -> Path:
    pkg = root / "site"
    (pkg / "sglang" / "srt").mkdir(parents=True)
    (pkg / "sglang" / "__init__.py").write_text("")
    (pkg / "sglang" / "srt" / "__init__.py").write_text("")
    (pkg / "sglang" / "srt" / "server_args.py").write_text(FAKE_SERVER_ARGS)
    info = pkg / f"sglang-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sglang\nVersion: {version}\n")
    return pkg


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(fake_sglang(pytester.path, "0.5.23")))
    pytester.makefile(".yaml", m=MATRIX.format(python=sys.executable))
    return pytester


def test_row_with_a_flag_the_engine_rejects_fails_collection_naming_flag_and_version(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "m.yaml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting m.yaml*",
            "sglang 0.5.23 rejects the flags of row 'cuda_graph+flashinfer_mla' in m.yaml: "
            "unrecognized arguments: --enable-flashinfer-mla",
            "*",
            "*",
            "ERROR m.yaml::cuda_graph+flashinfer_mla - sglang 0.5.23 rejects the flags of*",
            "*Interrupted: 1 error during collection*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_deselecting_the_rejected_row_lets_the_rest_run(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "m.yaml", "--collect-only", "-q", "-k", "not flashinfer_mla")
    assert result.ret == pytest.ExitCode.OK
    assert [line for line in result.outlines if "::" in line] == [
        "m.yaml::test_single[cuda_graph-single]",
        "m.yaml::test_single[nextn-single]",
    ]


def test_header_says_the_flags_were_validated_and_which_version_was_found(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "m.yaml", "--collect-only", "-k", "not flashinfer_mla")
    result.stdout.fnmatch_lines(
        [
            f"ablate: m.yaml (m): 3 rows, 3 cases; sglang 0.5.23 (installed for {sys.executable})",
            "ablate: flags validated by sglang 0.5.23's parser",
        ]
    )


def test_installed_version_decides_which_known_issues_apply(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(fake_sglang(pytester.path, "0.4.3.post2")))
    pytester.makefile(".yaml", m=MATRIX.format(python=sys.executable))
    result = pytester.runpytest("--ablate-matrix", "m.yaml", "--ablate-plan", "-k", "not flashinfer_mla")
    result.stdout.fnmatch_lines(["2 rows, 2 cases (1 expected to fail); nothing launched"])


def test_plan_marks_rejected_rows_and_exits_non_zero(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "m.yaml", "--ablate-plan")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "invalid flags: unrecognized" in result.stdout.str()


def test_without_sglang_the_run_says_once_that_flags_were_not_validated(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", m=MATRIX.format(python=sys.executable))
    result = pytester.runpytest("--ablate-matrix", "m.yaml", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    assert result.stdout.str().count("flags not validated") == 1


def test_plan_shows_the_engines_deprecation_warnings(project: pytest.Pytester) -> None:
    result = project.runpytest("--ablate-matrix", "m.yaml", "--ablate-plan", "-k", "not flashinfer_mla")
    result.stdout.fnmatch_lines(["sglang 0.5.23 warns: '--disable-cuda-graph' is deprecated"])


def test_rows_that_only_exist_for_the_installed_version_are_checked_too(project: pytest.Pytester) -> None:
    # with no version given, rule `a` (<0.4.4) excludes rows; the installed 0.5.23 brings them back: probe them too
    text = f"""
model: m
launch: [{sys.executable}, -m, sglang.launch_server]
features:
  a: {{on: {{enable-flashinfer-mla: true}}}}
  b: {{on: {{tp-size: 2}}}}
generate: {{mode: product, exclude_known_issues: true}}
known_issues:
  - {{when: [a], reason: "old", sglang: "<0.4.4"}}
workloads:
  single: {{kind: single, prompt: hi}}
"""
    project.makefile(".yaml", g=text)
    result = project.runpytest("--ablate-matrix", "g.yaml", "--ablate-plan")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*ERROR g.yaml::a - sglang 0.5.23 rejects*", "*ERROR g.yaml::a+b - sglang 0.5.23 rejects*"]
    )


REFUSED = """
model: m
launch: [{python}, -m, sglang.launch_server]
features:
  nextn: {{on: {{speculative-algorithm: NEXTN}}}}
  half: {{on: {{mem-fraction-static: 0.5}}}}
rows:
  - [nextn]
  - [nextn, half]
known_issues:
  - {{when: [nextn, half], reason: "refused by server_args", match: "NEXTN refuses"}}
workloads:
  single: {{kind: single, prompt: hi}}
"""


def test_a_row_the_engines_own_checks_refuse_is_not_launched_and_xfails_by_its_rule(project: pytest.Pytester) -> None:
    project.makefile(".yaml", m=REFUSED.format(python=sys.executable))
    plan = project.runpytest("--ablate-matrix", "m.yaml", "--ablate-plan")
    plan.stdout.fnmatch_lines(["*xfail, not launched: refused*"])
    # only the refused row: launching it would fail (the stand-in sglang has no launch_server), not as the rule says
    result = project.runpytest("--ablate-matrix", "m.yaml", "-k", "half", "-rx")
    result.assert_outcomes(xfailed=1)
    assert not (project.path / "ablate-results" / "logs" / "nextn+half.log").exists()


def test_a_refused_row_without_a_rule_fails_saying_so_without_launching(project: pytest.Pytester) -> None:
    project.makefile(
        ".yaml",
        m=REFUSED.format(python=sys.executable).split("known_issues:")[0]
        + "workloads:\n  single: {kind: single, prompt: hi}\n",
    )
    result = project.runpytest("--ablate-matrix", "m.yaml", "-k", "half")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*row 'nextn+half': sglang 0.5.23 refuses this combination of flags, so it was not launched [[]bad_flag[]]",
            "*evidence: AssertionError: NEXTN refuses 0.5*",
        ]
    )
    assert not (project.path / "ablate-results" / "logs" / "nextn+half.log").exists()


def test_checks_that_need_the_prepare_steps_output_run_again_after_them_before_any_launch(
    project: pytest.Pytester,
) -> None:
    made = REFUSED.format(python=sys.executable).replace("model: m\n", "model: made/m\n")
    make = "import os; os.makedirs('made/m'); open('made/m/config.json', 'w').close()"
    made += f'prepare:\n  - {{run: [{sys.executable}, -c, "{make}"], creates: made/m}}\n'
    project.makefile(".yaml", m=made)
    result = project.runpytest("--ablate-matrix", "m.yaml", "-k", "half", "-rx")
    result.assert_outcomes(xfailed=1)  # refused once the model's config existed; not launched
    assert (project.path / "made" / "m" / "config.json").exists()
    assert not (project.path / "ablate-results" / "logs" / "nextn+half.log").exists()
