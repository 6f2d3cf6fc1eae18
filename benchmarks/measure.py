"""Time and memory measurements shared by the benchmark scripts in this folder.

`peak_memory` reports what the system sees (the rise of the resident set, allocator overhead
included); `peak_tensor_memory` what the code allocates as tensors, and `peak_array_memory`
as numpy arrays and other Python objects (a tensor made by `torch.from_numpy` is counted
there, not as a tensor).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from torch.profiler import ProfilerActivity, profile


def peak_memory(run):
    """Run `run()`; return its result and the rise of the resident set's peak, in MB.

    Free heap memory is handed back to the system first (glibc's malloc_trim): memory that the
    allocator kept from earlier work would otherwise be reused unseen, and the rise would read
    near zero whatever the step allocates. The peak is reset through /proc/self/clear_refs
    where Linux allows it; otherwise the rise of the process's lifetime peak is reported (zero
    if an earlier phase was larger).
    """
    _trim_heap()
    reset = _reset_peak()
    before = _rss_kb("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run()
    after = _rss_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return result, max(after - before, 0) / 1024


def peak_tensor_memory(run):
    """Run `run()` under torch's profiler; return its result and the peak rise of tensor memory, MB.

    The profiler's memory events carry the running total of bytes that tensors hold on the CPU:
    this counts every tensor the code allocates, however short-lived, and no allocator overhead
    (numpy arrays, even those a tensor shares, are `peak_array_memory`'s).
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        result = run()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    memory = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
    if not memory:
        return result, 0.0
    start = memory[0]["args"]["Total Allocated"] - memory[0]["args"]["Bytes"]
    peak = max(e["args"]["Total Allocated"] for e in memory)
    return result, (peak - start) / 2**20


def _trim_heap() -> None:
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def timed(run):
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def peak_array_memory(run):
    """Run `run()` under tracemalloc; return its result and the peak rise of memory held by
    numpy arrays and Python objects, in MB (tensors that torch allocates are not seen)."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        result = run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, (peak - start) / 2**20
