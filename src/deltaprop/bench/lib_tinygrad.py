"""tinygrad (CPU backend) versions of the training-step cases, each step under `TinyJit`.

The step (zero the grads, forward, loss, backward, optimizer update) is one function under
`TinyJit`: its first call runs it as usual (compiling each kernel with clang), the second
captures the kernels and plans their buffers, and later calls replay that plan. The CPU
backend compiles with Debian's `clang` (`apt-get install clang`).

The loss is realized in the same schedule as the optimizer's update
(`Tensor.realize(loss, *opt.schedule_step())`): realized after the update, tinygrad's lazy
loss would be computed from the updated parameters, one step ahead of every other library.
Each timed call waits for the device (`synchronize`), so a measured step is finished work.
tests/bench/test_bench_jax_tinygrad.py checks that the losses of the first steps equal
PyTorch's before any of this is timed.
"""
from __future__ import annotations

import time

import numpy as np
from tinygrad import Device, Tensor, TinyJit
from tinygrad import helpers as _tg_helpers
from tinygrad.helpers import Context
from tinygrad.nn.optim import SGD, Adam

from . import _common as C


def set_threads(n: int) -> None:
    """The CPU backend's thread count (its kernels split their outer loop over that many
    workers; the value is read when kernels are generated, after this call)."""
    _tg_helpers.NUM_CPU_THREADS.value = n


def _data(a: np.ndarray) -> Tensor:
    """An input that is not a parameter (no gradient, not in the optimizer)."""
    return Tensor(np.ascontiguousarray(a)).is_param_(False)


def _params(arrays) -> list[Tensor]:
    return [Tensor(np.ascontiguousarray(a)) for a in arrays]


def _jit_step(loss_fn, opt):
    """A TinyJit step of loss_fn() and opt; the returned step waits for the device."""
    @TinyJit
    def jitted():
        with Context(TRAINING=1):
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            Tensor.realize(loss, *opt.schedule_step())  # the loss before the update, in one schedule
        return loss

    device = Device[Device.DEFAULT]

    def step():
        loss = jitted()
        device.synchronize()
        return loss

    step.jit = jitted  # (first_call reads its capture count)
    return step


def _xent(logits: Tensor, y: Tensor) -> Tensor:
    return logits.sparse_categorical_crossentropy(y)  # mean over the batch, as F.cross_entropy


def _mlp(adam: bool):
    x, y = C.mlp_data()
    params = _params(a for wb in C.mlp_params() for a in wb)
    w1, b1, w2, b2, w3, b3 = params
    xt, yt = _data(x), _data(y.astype(np.int32))
    if adam:
        b1_, b2_ = C.ADAM_BETAS
        opt = Adam(params, lr=C.ADAM_LR, b1=b1_, b2=b2_, eps=C.ADAM_EPS)
    else:
        opt = SGD(params, lr=C.MLP_LR)

    def loss_fn():
        h = (xt @ w1.T + b1).relu()
        h = (h @ w2.T + b2).relu()
        return _xent(h @ w3.T + b3, yt)

    return _jit_step(loss_fn, opt)


def mlp_sgd():
    """The mlp-sgd case in tinygrad: returns the step that the worker times, one TinyJit SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(adam=False)


def mlp_adam():
    """The mlp-adam case in tinygrad: returns the step that the worker times, one TinyJit Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _mlp(adam=True)


def mazur():
    """The mazur case in tinygrad: returns the step that the worker times, one TinyJit SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = (_data(a) for a in C.mazur_data())
    params = _params(a for wb in C.mazur_params() for a in wb)
    w1, b1, w2, b2 = params
    opt = SGD(params, lr=C.MAZUR_LR)

    def loss_fn():
        o = ((x @ w1.T + b1).sigmoid() @ w2.T + b2).sigmoid()
        return 0.5 * ((t - o) ** 2).sum()

    return _jit_step(loss_fn, opt)


def cnn():
    """The cnn case in tinygrad: returns the step that the worker times, one TinyJit SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    p = C.cnn_params()
    params = _params(p[k] for k in ("conv_w", "conv_b", "fc_w", "fc_b"))
    conv_w, conv_b, fc_w, fc_b = params
    xt, yt = _data(x), _data(y.astype(np.int32))
    opt = SGD(params, lr=C.CNN_LR)

    def loss_fn():
        a = xt.conv2d(conv_w, conv_b, padding=1).relu().max_pool2d(2)
        return _xent(a.flatten(1) @ fc_w.T + fc_b, yt)

    return _jit_step(loss_fn, opt)


def first_call():
    """The first-call case in tinygrad: seconds from the TinyJit step's first call until its
    captured plan has run once (the first call runs and compiles every kernel with clang, the
    second captures and replays) for the mlp-sgd step. tinygrad's on-disk cache of compiled
    kernels is off for it (CACHELEVEL=0), so an earlier process's kernels are not reused."""
    with Context(CACHELEVEL=0):
        step = _mlp(adam=False)
        t0 = time.perf_counter()
        first_loss = float(step().item())
        calls = 1
        while step.jit.captured is None:
            step()
            calls += 1
        seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        step()
        return {"value": seconds, "calls": calls, "first_loss": first_loss,
                "next_call_s": time.perf_counter() - t1}
