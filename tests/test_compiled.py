"""Eager until compiled (issue 17): StageCompiler runs a stage eagerly, compiles it only after
start(), on its own thread, and then serves the compiled twin with the same output."""
from __future__ import annotations

import threading
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.compiled import (
    EAGER_TRIAL_CALLS,
    TWIN_TRIAL_CALLS,
    StageCompiler,
    _entered_modes,
    _mode_state,
    compile_enabled,
    compile_mode_from_env,
    cxx_compiler,
)
from engine.tasks import ModelStore


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.InstanceNorm2d(8)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2) * scale

    def pair(self, xs: tuple[torch.Tensor, torch.Tensor]) -> dict[int, torch.Tensor]:
        return {0: self.conv(xs[0]), 1: self.conv(xs[1])}


def compile_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "i2i-compile"]


def test_off_is_plain_eager_and_starts_nothing():
    block = Block().eval()
    compiler = StageCompiler("off", min_eager_s=0.0)
    x = torch.randn(1, 3, 16, 16)
    with torch.inference_mode():
        out = compiler(block, "forward", x, 2.0)
        expected = block(x, 2.0)
    compiler.start()
    assert torch.equal(out, expected)
    assert not compile_threads() and compiler.wait(0)
    assert not compiler.is_compiled(block, "forward", x, 2.0)


def test_modes():
    cpu = torch.device("cpu")
    assert not compile_enabled("off", cpu)
    assert compile_enabled("auto", cpu) == (cxx_compiler() is not None)
    assert compile_enabled("auto", torch.device("cuda"))  # CUDA-graph twins, for capture-safe networks only
    assert ModelStore().compiler.mode == "off"  # the CLI and tests run plain eager


def test_a_stage_call_s_grad_inference_and_autocast_state_is_re_entered_on_the_compile_thread():
    """What a stage ran under (recorded per call) is what its twin is built and checked under, elsewhere."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        recorded = _mode_state("cpu")
    with torch.no_grad():
        plain = _mode_state("cpu")
    states = {}

    def elsewhere() -> None:
        for name, mode in (("autocast", recorded), ("plain", plain)):
            with _entered_modes(mode, "cpu"):
                states[name] = (_mode_state("cpu"), torch.get_autocast_dtype("cpu"))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert states["autocast"] == (recorded, torch.bfloat16)
    assert recorded == (False, True, "torch.bfloat16")
    assert states["plain"][0] == plain == (False, False, "None")


def test_mode_from_env(monkeypatch):
    monkeypatch.setenv("I2I_COMPILE", "ON")
    assert compile_mode_from_env() == "on"
    monkeypatch.setenv("I2I_COMPILE", "sometimes")
    assert compile_mode_from_env() == "auto"


def test_fast_stages_are_not_compiled():
    block = Block().eval()
    compiler = StageCompiler("on", min_eager_s=60.0)
    with torch.inference_mode():
        compiler(block, "forward", torch.randn(1, 3, 8, 8), 1.0)
    compiler.start()
    assert not compile_threads() and not compiler.records


def test_unsupported_argument_stays_eager():
    block = Block().eval()
    compiler = StageCompiler("on", min_eager_s=0.0)
    with pytest.raises(TypeError):
        compiler(block, "forward", torch.randn(1, 3, 8, 8), object())  # reaches the module, which rejects it
    compiler.start()
    assert not compiler.records and not compile_threads()


def test_eager_until_compiled_then_the_compiled_twin():
    # dynamo with its "eager" backend: the real tracing, guards and threading, without minutes of
    # inductor code generation (bench/bench_speed.py runs the inductor path and reports it)
    torch.manual_seed(0)
    block = Block().eval()
    compiler = StageCompiler("on", min_eager_s=0.0, backend="eager")
    x = torch.randn(1, 3, 16, 16)
    xs = (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 8, 8))
    with torch.inference_mode():
        eager = block(x, 0.5)
        first = compiler(block, "forward", x, 0.5)
        compiler(block, "pair", xs)
        assert torch.equal(first, eager)  # the first call ran the module itself
        assert not compile_threads()  # nothing compiles before start(): the request comes first
        assert not compiler.is_compiled(block, "forward", x, 0.5)
        compiler.start()
        assert compiler.wait(timeout=120)
        assert [r.ok for r in compiler.records] == [True, True], compiler.records
        assert compiler.is_compiled(block, "forward", x, 0.5)
        assert not compiler.is_compiled(block, "forward", x, 0.25)  # another constant: another graph
        assert not compiler.is_compiled(block, "forward", torch.randn(1, 3, 32, 32), 0.5)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(compiler(block, "forward", x_cl, 0.5), eager, atol=1e-4, rtol=1e-4)
        pair = compiler(block, "pair", xs)
        torch.testing.assert_close(pair[1], block.conv(xs[1]), atol=1e-4, rtol=1e-4)
    with torch.no_grad():  # another grad mode is another specialisation
        assert not compiler.is_compiled(block, "forward", x, 0.5)
    compiler.clear()
    assert not compiler.is_compiled(block, "forward", x, 0.5)


def test_a_twin_that_disagrees_with_eager_is_discarded():
    class Drifting(nn.Module):
        """Returns something else once traced (as a miscompiled kernel would)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + (1.0 if torch.compiler.is_compiling() else 0.0)

    compiler = StageCompiler("on", min_eager_s=0.0, backend="eager")
    x = torch.zeros(1, 3, 4, 4)
    module = Drifting()
    with torch.inference_mode():
        compiler(module, "forward", x)
    compiler.start()
    assert compiler.wait(timeout=120)
    assert compiler.records and not any(r.ok for r in compiler.records)
    assert "differs from eager" in compiler.records[-1].message
    with torch.inference_mode():
        assert torch.equal(compiler(module, "forward", x), x)  # still eager


def test_a_twin_slower_than_eager_where_it_runs_goes_back_to_eager():
    class Quick(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    compiler = StageCompiler("on", min_eager_s=0.0, backend="eager")
    x = torch.ones(1, 3, 4, 4)
    module = Quick()
    with torch.inference_mode():
        compiler(module, "forward", x)
    compiler.start()
    assert compiler.wait(timeout=120)
    with torch.inference_mode():
        assert compiler.is_compiled(module, "forward", x)
    key = next(iter(compiler._ready))
    twin = compiler._ready[key][1]

    def slow_twin(*args):  # as a twin built for the wrong machine or thread count would be
        time.sleep(0.05)
        return twin(*args)

    compiler._ready[key] = (module, slow_twin)
    with torch.inference_mode():
        for _ in range(TWIN_TRIAL_CALLS):
            assert torch.equal(compiler(module, "forward", x), x * 2)
        assert not compiler.is_compiled(module, "forward", x)
    assert "staying eager" in compiler.records[-1].message
    with torch.inference_mode():
        assert torch.equal(compiler(module, "forward", x), x * 2)  # eager from now on
    assert compiler.calls["Quick.forward compiled"] == TWIN_TRIAL_CALLS


def test_one_slow_eager_call_does_not_ask_for_a_compile_but_a_slow_median_does():
    class Paced(nn.Module):
        delay = 0.0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            time.sleep(self.delay)
            return x + 1

    compiler = StageCompiler("on", min_eager_s=0.03, backend="eager")
    module, x = Paced(), torch.zeros(1, 3, 4, 4)
    with torch.inference_mode():
        for delay in (0.05, 0.0, 0.0):  # one busy moment among quick calls
            module.delay = delay
            compiler(module, "forward", x)
    assert compiler._jobs.empty()
    module.delay = 0.05
    with torch.inference_mode():
        for _ in range(EAGER_TRIAL_CALLS):
            compiler(module, "forward", x)
    assert not compiler._jobs.empty()  # asked for once the median of its recent calls is slow


def test_live_cpu_stages_compile_as_one_cpp_call_and_slow_or_gpu_stages_do_not():
    from engine.compiled import CPP_WRAPPER_MAX_EAGER_S, inductor_options

    assert inductor_options("cpu", 0.03) == {"freezing": True, "cpp_wrapper": True}
    assert inductor_options("cpu", CPP_WRAPPER_MAX_EAGER_S * 4) == {"freezing": True}
    assert inductor_options("cuda", 0.03) == {"freezing": True}
