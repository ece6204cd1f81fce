"""Inductor-compiled twins of inference stages, built beside the preview path, never in its way.

A *stage* is a bound module method the tasks call per preview (StarGAN v2's ``encode_source`` /
``decode_style``, CoCosNet's ``input_keys`` / ``exemplar_keys`` / ``netG``). :class:`StageCompiler`
runs a stage eagerly until a compiled twin for the same input signature (shapes, strides, dtypes,
grad / inference mode, autocast dtype) is ready, so the first preview is never slower than eager:
compilation starts only after the request that needed it has its result (:meth:`StageCompiler.start`;
in the studio only once no edit waits). Compiling (``torch.compile`` with inductor freezing: oneDNN weight
prepacking and conv + activation fusion, fused norm / modulation kernels) happens on one
low-priority background thread, started only for stages whose eager run takes at least
``min_eager_s`` (:data:`MIN_EAGER_S`; the smallest stages gain too little to pay for the compile).
A compiled twin whose output differs from the eager one is discarded.

Inductor's kernel cache lives in the user cache folder (:func:`inductor_cache_dir`), so a later
session skips the C++ compilation; the frozen graph itself is rebuilt each session (oneDNN-packed
weights are not picklable, so inductor's FX graph cache bypasses frozen graphs).

On CUDA the twin is no compiled graph but a *CUDA graph*: the stage's kernels captured once and
replayed with one launch (:class:`CudaGraphTwin`). At preview sizes a GPU mostly waits for Python to
launch kernels (a lent H200 ran the StarGAN v2 generator at 256² in 5.4 ms eagerly and in 2.1 ms as a
replayed graph, bit-identical: ``bench/results/speed_cuda.json``). Only networks that declare
``cuda_graph_safe = True`` are captured (no host synchronisation, no data-dependent shapes, no
tensors cached across calls); the replay is checked against the eager output like any twin.

``I2I_COMPILE`` = ``auto`` (default: on for CPU jobs when a C++ compiler is present, CUDA graphs for
capture-safe networks on CUDA) | ``on`` | ``off``.
"""
from __future__ import annotations

import contextlib
import functools
import os
import queue
import shutil
import statistics
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .devices import user_cache_dir

CompileMode = Literal["auto", "on", "off"]
# After this many failed compilations (a broken toolchain, say) a compiler stops trying.
MAX_FAILURES = 3
# GIL switch interval while compiling (Python's default is 5 ms).
COMPILE_SWITCH_INTERVAL_S = 0.0005
COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")
# Live stages (eager under this) compile with inductor's cpp_wrapper: the whole graph is one C++
# call instead of one Python-level call per kernel, each of which gives the GIL away and must win
# it back from the GUI thread (so the studio's compiled StarGAN v2 decoder ran slower than eager).
# It doubles the compile time, which a stage of seconds (a 256² CoCosNet) would not earn back.
CPP_WRAPPER_MAX_EAGER_S = 0.5
# A stage is compiled once its eager run takes this long: low enough for CoCosNet's input branch
# at the default model's 128² preview (~30 ms eager on 2 idle cores, run per pointer move of a
# stroke), high enough that StarGAN v2's 64² decoder (10-20 ms while the GUI paints) stays eager:
# in the studio its compiled twin measured 43-130 ms (bench/bench_studio.py), slower than eager.
MIN_EAGER_S = 0.025
# ... judged by the median of this many eager calls: one call slowed by a busy moment (the GUI
# painting a stroke, another process) must not start a compile that then competes with the drag.
EAGER_TRIAL_CALLS = 3
# Stages that run once per input (an exemplar's keys, a source photo's encoder half) rather than
# per edit compile only when slower than this: at preview sizes their compile (tens of seconds of
# a core, beside the live previews) would take hundreds of new inputs to pay back.
ONCE_MIN_EAGER_S = 0.1


def compile_mode_from_env() -> CompileMode:
    """``I2I_COMPILE`` (auto | on | off); anything else means ``auto``."""
    value = os.environ.get("I2I_COMPILE", "auto").strip().lower()
    return value if value in COMPILE_MODES else "auto"  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def cxx_compiler() -> str | None:
    """The C++ compiler inductor's CPU backend would use, or None."""
    env = os.environ.get("CXX")
    if env and shutil.which(env):
        return env
    for name in (("cl",) if sys.platform == "win32" else ("g++", "c++", "clang++")):
        if shutil.which(name):
            return name
    return None


def inductor_options(device_type: str, eager_s: float) -> dict[str, bool]:
    """Inductor options for a stage whose eager run takes ``eager_s``: freezing (oneDNN weight
    prepacking, conv + activation fusion) always; cpp_wrapper for live CPU stages."""
    options = {"freezing": True}
    if device_type == "cpu" and eager_s < CPP_WRAPPER_MAX_EAGER_S:
        options["cpp_wrapper"] = True
    return options


def compile_enabled(mode: CompileMode, device: torch.device) -> bool:
    """``auto`` builds twins for CPU jobs where a C++ compiler exists and for CUDA jobs (CUDA graphs,
    which need no compiler); ``on`` on any device. Cheap: it runs on every stage call, so dynamo
    itself is imported (seconds) on the compile thread, never on the preview path."""
    if mode == "off":
        return False
    if mode == "on" or device.type == "cuda":
        return True
    return device.type == "cpu" and cxx_compiler() is not None


class CudaGraphTwin:
    """A stage captured as one CUDA graph for fixed argument shapes: a call copies its tensors into
    the graph's input buffers, replays, and returns copies of the outputs (the next replay rewrites
    them). Calls are serialised: the buffers are shared."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 modes: Callable[[], contextlib.AbstractContextManager]) -> None:
        """``modes()``: a fresh context with the caller's grad / inference / autocast state."""
        tree = torch.utils._pytree
        self._inputs = tree.tree_map_only(torch.Tensor, lambda t: t.clone(), args)
        self._lock = threading.Lock()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with modes(), torch.cuda.stream(side):
            for _ in range(2):  # cuDNN / cuBLAS pick algorithms and workspaces outside the capture
                fn(*self._inputs)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        # thread_local: the preview worker may run eager CUDA work while this thread captures
        with modes(), torch.cuda.graph(self._graph, capture_error_mode="thread_local"):
            self._outputs = fn(*self._inputs)

    def __call__(self, *args: Any) -> Any:
        tree = torch.utils._pytree
        with self._lock:
            for dst, src in zip(tree.tree_leaves(self._inputs), tree.tree_leaves(args), strict=True):
                if isinstance(dst, torch.Tensor):
                    dst.copy_(src)
            self._graph.replay()
            return tree.tree_map_only(torch.Tensor, lambda t: t.clone(), self._outputs)


def inductor_cache_dir() -> Path:
    """Where inductor keeps compiled kernels across sessions (``TORCHINDUCTOR_CACHE_DIR`` wins)."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    path = Path(env) if env else user_cache_dir() / "inductor"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)  # inductor reads it at compile time
    return path


def _signature(value: Any) -> Hashable:
    """What a compiled graph is specialised on, for one argument."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), tuple(value.stride()), value.dtype, str(value.device),
                value.requires_grad)
    if isinstance(value, Mapping):
        return ("map", tuple((k, _signature(v)) for k, v in sorted(value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_signature(v) for v in value))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot compile a stage taking a {type(value).__name__}")


def _mode_state(device_type: str) -> Hashable:
    """Grad / inference mode and autocast dtype: compiled graphs are specialised on them too."""
    autocast = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
    return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(), str(autocast))


def _entered_modes(mode: Hashable, device_type: str) -> contextlib.ExitStack:
    """Re-enter the grad / inference / autocast state :func:`_mode_state` recorded for a stage call."""
    grad, inference, autocast = mode
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode() if inference else torch.set_grad_enabled(grad))
    if autocast != "None":  # no weight-cast cache on CUDA: a captured graph must not keep one
        stack.enter_context(torch.autocast(device_type, dtype=getattr(torch, autocast.split(".")[-1]),
                                           cache_enabled=device_type != "cuda"))
    return stack


def _first_device_type(args: tuple[Any, ...]) -> str:
    for leaf in torch.utils._pytree.tree_leaves(args):
        if isinstance(leaf, torch.Tensor):
            return leaf.device.type
    return "cpu"


def outputs_match(a: Any, b: Any, atol: float = 1e-2, rtol: float = 1e-2) -> bool:
    """Same structure and values within tolerance (fused kernels reorder float sums)."""
    la, lb = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, torch.Tensor) != isinstance(y, torch.Tensor):
            return False
        if isinstance(x, torch.Tensor):
            if x.shape != y.shape or not torch.allclose(x.float(), y.float(), atol=atol, rtol=rtol):
                return False
    return True


@dataclass(frozen=True)
class CompileRecord:
    """One finished compilation: which stage, how long it took, and whether it is in use."""

    stage: str
    seconds: float
    ok: bool
    message: str = ""


@dataclass
class _Job:
    key: Hashable
    module: nn.Module
    method: str
    args: tuple[Any, ...]
    eager_out: Any
    mode: tuple[bool, bool, str]
    device_type: str
    eager_s: float  # the eager time that asked for the twin


# Calls over which a compiled twin must not be slower than eager (the median), or it is dropped.
TWIN_TRIAL_CALLS = 3

class StageCompiler:
    """Eager until compiled: see the module docstring. Thread-safe; one compile at a time."""

    def __init__(self, mode: CompileMode = "off", *, min_eager_s: float = MIN_EAGER_S,
                 once_min_eager_s: float = ONCE_MIN_EAGER_S, capacity: int = 16,
                 nice: int = 10, autostart: bool = False, backend: str = "inductor") -> None:
        self.mode: CompileMode = mode
        self.backend = backend  # tests use dynamo's "eager" backend: same scheduling, seconds not minutes
        self.autostart = autostart  # False: compilation waits for start()
        self.min_eager_s = min_eager_s
        self.once_min_eager_s = once_min_eager_s
        self.capacity = capacity
        self.nice = nice
        # "request": compile after each request (CLI, benchmarks); "idle": only when the caller says
        # it is idle (the live scheduler: a compile's GIL-heavy tracing never starts mid-gesture)
        self.start_on: Literal["request", "idle"] = "request"
        self.records: list[CompileRecord] = []
        self.calls: Counter[str] = Counter()  # "Stage.method compiled|eager" -> calls (benchmarks)
        self._ready: OrderedDict[Hashable, tuple[nn.Module, Callable[..., Any]]] = OrderedDict()
        self._eager_s: dict[Hashable, float] = {}  # the eager time of the call that asked for a twin
        self._twin_s: dict[Hashable, list[float]] = {}  # the twin's first times where it runs
        self._eager_trials: dict[Hashable, list[float]] = {}  # eager times before a twin is asked for
        self._failed: set[Hashable] = set()
        self._queued: set[Hashable] = set()
        self._jobs: queue.Queue[_Job] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)

    # ------------------------------------------------------------------ calling a stage
    def __call__(self, module: nn.Module, method: str, *args: Any, once: bool = False) -> Any:
        """``getattr(module, method)(*args)``, through the compiled twin once it is ready.
        ``once``: the stage runs once per input, not per edit (``once_min_eager_s`` applies)."""
        fn = getattr(module, method)
        device_type = _first_device_type(args)
        if not compile_enabled(self.mode, torch.device(device_type)):
            return fn(*args)
        if device_type == "cuda" and not getattr(module, "cuda_graph_safe", False):
            return fn(*args)
        # Compiled graphs are specialised on strides: one layout for every caller (e.g. a compiled
        # encoder may return channels-last features where the eager one returned NCHW).
        args = torch.utils._pytree.tree_map_only(torch.Tensor, lambda t: t.contiguous(), args)
        try:
            key = (id(module), method, _signature(args), _mode_state(device_type))
        except TypeError:
            return fn(*args)
        with self._lock:
            entry = self._ready.get(key)
            if entry is not None:
                self._ready.move_to_end(key)
            wanted = (entry is None and key not in self._failed and key not in self._queued
                      and len(self._failed) < MAX_FAILURES)
        stage = f"{type(module).__name__}.{method}"
        self.calls[f"{stage} {'compiled' if entry is not None else 'eager'}"] += 1
        t0 = time.perf_counter()
        if entry is not None:
            out = entry[1](*args)
            self._judge_twin(key, stage, time.perf_counter() - t0)
            return out
        out = fn(*args)
        if wanted:
            # a capture costs a few eager calls, so on CUDA every stage is worth one
            threshold = 0.0 if device_type == "cuda" else self.once_min_eager_s if once else self.min_eager_s
            with self._lock:
                trials = self._eager_trials.setdefault(key, [])
                trials.append(time.perf_counter() - t0)
                del trials[:-EAGER_TRIAL_CALLS]
                enough = once or threshold <= 0 or len(trials) >= EAGER_TRIAL_CALLS
                eager_s = statistics.median(trials)
                if enough and eager_s >= threshold:
                    self._eager_s[key] = eager_s
                    del self._eager_trials[key]
                else:
                    enough = False
            if enough:
                self._submit(_Job(key, module, method, args, out, _mode_state(device_type), device_type, eager_s))
        return out

    def _judge_twin(self, key: Hashable, stage: str, seconds: float) -> None:
        """Keep a compiled twin only where it pays where it runs: a twin whose median over its first
        :data:`TWIN_TRIAL_CALLS` calls is slower than the eager call it replaces goes back to eager
        (a compile's speed depends on the machine, its load and the threads it was built for)."""
        with self._lock:
            eager_s = self._eager_s.get(key)
            times = self._twin_s.setdefault(key, [])
            if eager_s is None or len(times) >= TWIN_TRIAL_CALLS:
                return
            times.append(seconds)
            if len(times) < TWIN_TRIAL_CALLS or statistics.median(times) <= eager_s:
                return
            self._ready.pop(key, None)
            self._failed.add(key)
            self.records.append(CompileRecord(stage, 0.0, False, f"compiled {statistics.median(times) * 1000:.1f} "
                                                                 f"ms > eager {eager_s * 1000:.1f} ms; staying eager"))

    def is_compiled(self, module: nn.Module, method: str, *args: Any) -> bool:
        """True when a call with these arguments (in the current grad / autocast mode) runs compiled."""
        try:
            key = (id(module), method, _signature(args), _mode_state(_first_device_type(args)))
        except TypeError:
            return False
        with self._lock:
            return key in self._ready

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued compilation has finished (benchmarks, tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._queued:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def clear(self) -> None:
        """Forget compiled twins (the models they froze are being dropped)."""
        with self._lock:
            self._ready.clear()
            self._failed.clear()
            self._eager_s.clear()
            self._twin_s.clear()
            self._eager_trials.clear()

    # ------------------------------------------------------------------ background thread
    def request_done(self) -> None:
        """A request's result is ready: start compiling unless compiles wait for idle."""
        if self.start_on == "request":
            self.start()

    def start(self) -> None:
        """Start compiling what the last calls asked for: after a request's result is ready
        (:meth:`request_done`), or when the live scheduler goes idle, so a preview never shares the
        CPU with its own compilation."""
        with self._lock:
            if self._jobs.empty() or (self._thread is not None and self._thread.is_alive()):
                return
            # A daemon thread: quitting the app does not wait for a half-done compilation.
            self._thread = threading.Thread(target=self._work, name="i2i-compile", daemon=True)
            self._thread.start()

    def _submit(self, job: _Job) -> None:
        with self._lock:
            if job.key in self._queued:
                return
            self._queued.add(job.key)
            self._jobs.put(job)
            if self.autostart and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._work, name="i2i-compile", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        with contextlib.suppress(AttributeError, OSError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)  # Linux: per thread
        inductor_cache_dir()
        # Tracing and code generation are pure Python and hold the GIL; an eager preview on the
        # worker needs it for every op it dispatches. A short switch interval bounds that wait.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, COMPILE_SWITCH_INTERVAL_S))
        try:
            self._drain()
        finally:
            sys.setswitchinterval(interval)

    def _drain(self) -> None:
        while True:
            with self._lock:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    self._thread = None
                    return
            record = self._compile(job)
            with self._idle:
                self.records.append(record)
                self._queued.discard(job.key)
                self._idle.notify_all()

    def _compile(self, job: _Job) -> CompileRecord:
        stage = f"{type(job.module).__name__}.{job.method}"
        t0 = time.perf_counter()
        modes = functools.partial(_entered_modes, job.mode, job.device_type)
        try:
            if job.device_type == "cuda":
                compiled = CudaGraphTwin(getattr(job.module, job.method), job.args, modes)
            else:
                from torch import _dynamo

                if not _dynamo.is_dynamo_supported():
                    raise RuntimeError("torch.compile is not supported on this Python / platform")
                options = inductor_options(job.device_type, job.eager_s) if self.backend == "inductor" else None
                compiled = torch.compile(getattr(job.module, job.method), backend=self.backend, dynamic=False,
                                         options=options)
            with modes():
                out = compiled(*job.args)
            if not outputs_match(out, job.eager_out):
                raise RuntimeError("compiled output differs from eager; staying eager")
        except Exception as exc:  # any compiler failure means: stay eager
            with self._lock:
                self._failed.add(job.key)
            return CompileRecord(stage, time.perf_counter() - t0, False, f"{type(exc).__name__}: {exc}"[:500])
        with self._lock:
            self._ready[job.key] = (job.module, compiled)  # keeps the module alive as long as the twin
            while len(self._ready) > self.capacity:
                self._ready.popitem(last=False)
        return CompileRecord(stage, time.perf_counter() - t0, True)
