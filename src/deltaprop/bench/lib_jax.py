"""JAX (CPU) versions of the training-step cases: the whole update under `jax.jit`.

Each step is one pure function `update(state, *data) -> (new state, loss)` (forward, loss,
`jax.value_and_grad`, the optimizer's update) compiled by `jax.jit` with the state donated
(`donate_argnums=0`: XLA may write the new parameters and moments over the old ones, as an
in-place optimizer does). The step the worker times makes one call and waits for its results
(`jax.block_until_ready`), so each measured step is finished work, as in every other library
(JAX dispatches asynchronously; a loop that never waits would time dispatch only).

The math is PyTorch's: mean softmax cross-entropy over int labels, `torch.optim.SGD` and
`torch.optim.Adam` (bias corrections as PyTorch applies them), Mazur's 1/2 sum (t - o)^2.
tests/bench/test_bench_jax_tinygrad.py checks that the losses of the first steps equal
PyTorch's before any of this is timed.
"""
from __future__ import annotations

import os
import time

import numpy as np
import jax
import jax.numpy as jnp
from jax import lax

from . import _common as C


def set_threads(n: int) -> None:
    """One thread: XLA's single-threaded CPU path. XLA reads its flags when its CPU client starts
    (on the first array made, after this call); above one it uses every usable core, which is
    the runner's default thread count on this machine."""
    if n == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1".strip()


def _jitted(update, state, *data):
    """The step the worker times: update under jax.jit with the state donated; each call waits
    for the new state and the loss."""
    fn = jax.jit(update, donate_argnums=0)
    box = [state]

    def step():
        box[0], loss = jax.block_until_ready(fn(box[0], *data))
        return loss

    return step


def _xent(logits, y):
    """Mean softmax cross-entropy of (n, k) logits against (n,) int labels (F.cross_entropy)."""
    logp = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _trainer(loss_fn, lr: float, adam: bool):
    """update(state, *data) -> (state, loss); state: params (SGD) or (params, m, v, t) (Adam)."""
    if not adam:
        def sgd_update(params, *data):
            loss, grads = jax.value_and_grad(loss_fn)(params, *data)
            return [p - lr * g for p, g in zip(params, grads)], loss

        return sgd_update
    b1, b2 = C.ADAM_BETAS

    def adam_update(state, *data):
        params, ms, vs, t = state
        loss, grads = jax.value_and_grad(loss_fn)(params, *data)
        t = t + 1
        c1, c2 = 1 - b1**t, 1 - b2**t
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, grads)]
        vs = [b2 * v + (1 - b2) * (g * g) for v, g in zip(vs, grads)]
        # torch.optim.Adam: p -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps)
        params = [p - (lr / c1) * m / (jnp.sqrt(v) / jnp.sqrt(c2) + C.ADAM_EPS)
                  for p, m, v in zip(params, ms, vs)]
        return (params, ms, vs, t), loss

    return adam_update


def _mlp_loss(params, x, y):
    w1, b1, w2, b2, w3, b3 = params
    h = jax.nn.relu(x @ w1.T + b1)
    h = jax.nn.relu(h @ w2.T + b2)
    return _xent(h @ w3.T + b3, y)


def _mlp_parts(adam: bool):
    x, y = C.mlp_data()
    params = [jnp.asarray(a) for wb in C.mlp_params() for a in wb]
    state = (params, [jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params],
             jnp.zeros((), jnp.float32)) if adam else params
    update = _trainer(_mlp_loss, C.ADAM_LR if adam else C.MLP_LR, adam)
    return update, state, jnp.asarray(x), jnp.asarray(y.astype(np.int32))


def mlp_sgd():
    """The mlp-sgd case in JAX: returns the step that the worker times, one jitted SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _jitted(*_mlp_parts(adam=False))


def mlp_adam():
    """The mlp-adam case in JAX: returns the step that the worker times, one jitted Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    return _jitted(*_mlp_parts(adam=True))


def mazur():
    """The mazur case in JAX: returns the step that the worker times, one jitted SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    jax.config.update("jax_enable_x64", True)  # float64 arrays (off by default); set before any array
    x, t = (jnp.asarray(a) for a in C.mazur_data())
    params = [jnp.asarray(a) for wb in C.mazur_params() for a in wb]

    def loss_fn(params, x, t):
        w1, b1, w2, b2 = params
        o = jax.nn.sigmoid(jax.nn.sigmoid(x @ w1.T + b1) @ w2.T + b2)
        return 0.5 * jnp.sum((t - o) ** 2)

    return _jitted(_trainer(loss_fn, C.MAZUR_LR, adam=False), params, x, t)


def cnn():
    """The cnn case in JAX: returns the step that the worker times, one jitted SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = C.cnn_data()
    p = C.cnn_params()
    params = [jnp.asarray(p[k]) for k in ("conv_w", "conv_b", "fc_w", "fc_b")]

    def loss_fn(params, x, y):
        conv_w, conv_b, fc_w, fc_b = params
        z = lax.conv_general_dilated(x, conv_w, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"))
        a = jax.nn.relu(z + conv_b[None, :, None, None])
        # MaxPool2d(2): reduce_window's gradient goes to one element of a window, as PyTorch's
        pooled = lax.reduce_window(a, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        return _xent(pooled.reshape(len(x), -1) @ fc_w.T + fc_b, y)

    return _jitted(_trainer(loss_fn, C.CNN_LR, adam=False), params, jnp.asarray(x),
                   jnp.asarray(y.astype(np.int32)))


def first_call():
    """The first-call case in JAX: seconds from `jax.jit(update, donate_argnums=0)` until its
    first call has returned (tracing, XLA's compilation, one run) for the mlp-sgd step. The data
    and parameters are made first, so the CPU client's start is not in the time."""
    update, state, x, y = _mlp_parts(adam=False)
    jax.block_until_ready((state, x, y))
    t0 = time.perf_counter()
    fn = jax.jit(update, donate_argnums=0)
    state, loss = jax.block_until_ready(fn(state, x, y))
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    jax.block_until_ready(fn(state, x, y))
    return {"value": seconds, "calls": 1, "first_loss": float(loss), "next_call_s": time.perf_counter() - t1}
