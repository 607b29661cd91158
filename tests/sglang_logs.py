"""How SGLang 0.5 logs a failed start-up, for the stand-in server to print and the failure tests to read.

The shape is SGLang's own: the scheduler logs "Scheduler hit an exception: " with the formatted traceback chain
(`get_exception_traceback()`); an error raised while capturing CUDA graphs is re-raised by the graph runner as
`Exception(f"Capture cuda graph failed: {e}\\n{CUDA_GRAPH_CAPTURE_FAILED_MSG}")`, so it follows "During handling
of the above exception"; then the launcher logs "Received sigquit from a child process" and
"kill_process_tree called", and SIGKILLs its own tree (exit code -9). Seen with SGLang 0.5.15 on an H200.
"""

from __future__ import annotations

CAPTURE_ADVICE = (
    "Possible solutions:\n"
    "1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)\n"
    "2. set --cuda-graph-max-bs-decode to a smaller value (e.g., 16)\n"
    "3. disable decode CUDA graph by --cuda-graph-backend-decode=disabled. (Not recommended. Huge performance loss)\n"
    "Open an issue on GitHub https://github.com/sgl-project/sglang/issues/new/choose \n"
)
STUB = (
    "sitecustomize.StubUsed: flashinfer.sampling.top_k_top_p_sampling_from_probs(...) was called, but flashinfer "
    "is an import-only stub here"
)
CAUSES = {  # the innermost exception of each kind of failure
    "stub": STUB,
    "oom": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.50 GiB. GPU 0 has a total capacity "
    "of 139.81 GiB of which 1.02 GiB is free.",
    "capturing": "RuntimeError: CUDA error: operation not permitted when stream is capturing",
    "nonetype": "TypeError: object of type 'NoneType' has no len()",
    "import": "ImportError: cannot import name 'Qwen2TokenizerFast' from 'transformers' "
    "(/site/transformers/__init__.py)",
    # tp-size 2 with one visible GPU: rank 1's set_device (SGLang 0.5.15, torch 2.11, on the H200)
    "ordinal": "torch.AcceleratorError: CUDA error: invalid device ordinal\n"
    "GPU device may be out of range, do you have enough GPUs?\n"
    "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might be "
    "incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1\n"
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
}
FIRST_FRAMES = """\
  File "/site/sglang/srt/managers/scheduler.py", line 6360, in run_scheduler_process
    scheduler = Scheduler(server_args, port_args)
                ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/site/sglang/srt/managers/scheduler.py", line 512, in __init__
    self.tp_worker = TpModelWorker(server_args=server_args, gpu_id=gpu_id)
"""


def _traceback(frames: str, exception: str) -> str:
    return f"Traceback (most recent call last):\n{frames}{exception}\n"


RUNNING_FRAMES = """\
  File "/site/sglang/srt/managers/scheduler.py", line 6366, in run_scheduler_process
    scheduler.run_event_loop()
  File "/site/sglang/srt/managers/scheduler.py", line 1302, in event_loop_normal
    result = self.run_batch(batch)
"""


DIST_FRAMES = """\
  File "/site/sglang/srt/model_executor/model_runner.py", line 547, in __init__
    self.pre_model_load_memory = self.init_torch_distributed()
  File "/site/sglang/srt/model_executor/model_runner.py", line 1236, in init_torch_distributed
    torch.get_device_module(self.device).set_device(self.gpu_id)
  File "/site/torch/cuda/__init__.py", line 638, in set_device
    torch._C._cuda_setDevice(device)
"""


def scheduler_failure(cause: str, phase: str, rank: int = 0) -> str:
    """The log lines of a scheduler (TP rank `rank`) that failed with CAUSES[cause] in `phase`: "capture" (of
    CUDA graphs), "load" (the model), "dist" (torch distributed init) or "running" (serving a batch)."""
    if phase == "capture":
        inner = _traceback(
            '  File "/site/sglang/srt/model_executor/runner/decode_cuda_graph_runner.py", line 598, in __init__\n'
            "    self.capture()\n"
            '  File "/site/sglang/srt/model_executor/runner/decode_cuda_graph_runner.py", line 701, in capture\n'
            "    out = self.model_runner.forward(batch)\n",
            CAUSES[cause],
        )
        outer = _traceback(
            FIRST_FRAMES + '  File "/site/sglang/srt/model_executor/runner/decode_cuda_graph_runner.py", line 602, '
            "in __init__\n    raise Exception(\n",
            f"Exception: Capture cuda graph failed: {CAUSES[cause].split(': ', 1)[1]}\n{CAPTURE_ADVICE}",
        )
        chain = f"{inner}\nDuring handling of the above exception, another exception occurred:\n\n{outer}"
    elif phase == "running":
        chain = _traceback(RUNNING_FRAMES, CAUSES[cause])
    elif phase == "dist":
        chain = _traceback(FIRST_FRAMES + DIST_FRAMES, CAUSES[cause])
    else:
        chain = _traceback(
            FIRST_FRAMES + '  File "/site/sglang/srt/model_executor/model_runner.py", line 930, in load_model\n'
            "    self.model = get_model(model_config=self.model_config)\n",
            CAUSES[cause],
        )
    header = "Init torch distributed begin." if phase == "dist" else "Load weight begin. avail mem=138.95 GB"
    return (
        f"[2026-11-20 10:00:01 TP{rank}] {header}\n"
        f"[2026-11-20 10:00:09 TP{rank}] Scheduler hit an exception: {chain}\n"
        "[2026-11-20 10:00:09] Received sigquit from a child process. It usually means the child failed.\n"
        "[2026-11-20 10:00:09] kill_process_tree called: parent_pid=4242, include_parent=True, pid=4242\n"
    )
