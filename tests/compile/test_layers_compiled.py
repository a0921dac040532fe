"""Every dp.nn layer through dp.compile(strict=True): N compiled steps and N eager steps give
equal state dicts (buffers included) and parameters, bit for bit, equal errors on bad input
(checks that depend on the data run on every replay), and the same return types on every call."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp

nn = dp.nn
STEPS = 6


def _floats(shape):
    return lambda rng, i: (dp.tensor(rng.standard_normal(shape).astype(np.float32)),)


def _with_target(shape, target):
    def batch(rng, i):
        return dp.tensor(rng.standard_normal(shape).astype(np.float32)), target(rng)
    return batch


def _embedding_batch(n, pad):
    def batch(rng, i):  # the padding index shows up only after the recorded calls
        return (dp.tensor(rng.integers(0 if i >= 2 else pad + 1, n, size=(4, 3))),)
    return batch


_X2 = (4, 3)  # (N, features)
_X4 = (2, 3, 6, 6)  # (N, C, H, W)
_LABELS = lambda rng: dp.tensor(rng.integers(0, 3, size=4))  # noqa: E731

# name -> (build, batch(rng) -> args, [(bad args, error type)], scaled): scaled multiplies the first
# input by a parameter, so that every layer has a gradient to pass back and something to train
LAYERS = {
    "Linear": (lambda: nn.Linear(3, 2), _floats(_X2), [((dp.zeros((4, 5)),), ValueError)], True),
    "Conv2d": (lambda: nn.Conv2d(3, 2, 3, padding=1), _floats(_X4), [((dp.zeros((2, 4, 6, 6)),), ValueError)], True),
    "Conv1d": (lambda: nn.Conv1d(3, 2, 3), _floats((2, 3, 7)), [((dp.zeros((2, 5, 7)),), ValueError)], True),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), _floats(_X4), [], True),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), _floats(_X4), [], True),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(2), _floats(_X4), [], True),
    "Flatten": (lambda: nn.Flatten(), _floats(_X4), [], True),
    "Dropout": (lambda: nn.Dropout(0.3), _floats(_X2), [], True),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), _floats(_X2), [((dp.zeros((1, 3)),), ValueError),
                                                              ((dp.zeros((4, 2)),), ValueError)], True),
    "BatchNorm1d-cumulative": (lambda: nn.BatchNorm1d(3, momentum=None), _floats(_X2), [], True),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), _floats(_X4), [((dp.zeros((2, 3, 6)),), ValueError)], True),
    "LayerNorm": (lambda: nn.LayerNorm(3), _floats(_X2), [], True),
    "Embedding": (lambda: nn.Embedding(5, 2, padding_idx=0), _embedding_batch(5, 0),
                  [((dp.tensor(np.array([[1, -1, 2]] * 4)),), IndexError),
                   ((dp.tensor(np.array([[1, 5, 2]] * 4)),), IndexError)], False),
    "ReLU": (lambda: nn.ReLU(), _floats(_X2), [], True),
    "Sigmoid": (lambda: nn.Sigmoid(), _floats(_X2), [], True),
    "Tanh": (lambda: nn.Tanh(), _floats(_X2), [], True),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), _floats(_X2), [], True),
    "GELU": (lambda: nn.GELU(), _floats(_X2), [], True),
    "Softplus": (lambda: nn.Softplus(), _floats(_X2), [], True),
    "Softmax": (lambda: nn.Softmax(-1), _floats(_X2), [], True),
    "LogSoftmax": (lambda: nn.LogSoftmax(-1), _floats(_X2), [], True),
    "Identity": (lambda: nn.Identity(), _floats(_X2), [], True),
    "Sequential": (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), _floats(_X2), [], True),
    "MSELoss": (lambda: nn.MSELoss(), _with_target(_X2, lambda rng: dp.tensor(rng.random(_X2).astype(np.float32))),
                [], True),
    "L1Loss": (lambda: nn.L1Loss(), _with_target(_X2, lambda rng: dp.tensor(rng.random(_X2).astype(np.float32))),
               [], True),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(), _with_target(_X2, _LABELS),
                         [((dp.zeros(_X2), dp.tensor(np.array([0, 3, 1, 2]))), ValueError)], True),
    "NLLLoss": (lambda: nn.NLLLoss(), _with_target(_X2, _LABELS),
                [((dp.zeros(_X2), dp.tensor(np.array([0, 3, 1, 2]))), ValueError)], True),
    "BCELoss": (lambda: nn.BCELoss(), lambda rng, i: (dp.tensor(rng.random(_X2).astype(np.float32) * .3 + .05),
                                                   dp.tensor(rng.random(_X2).astype(np.float32))),
                [((dp.full(_X2, 0.9), dp.full(_X2, 0.5)), ValueError)], True),
    "BCEWithLogitsLoss": (lambda: nn.BCEWithLogitsLoss(),
                          _with_target(_X2, lambda rng: dp.tensor(rng.random(_X2).astype(np.float32))), [], True),
}
# Module subclasses of dp.nn with no forward of their own (containers, the base class)
NO_FORWARD = {"Module", "ModuleList", "ModuleDict"}


def test_every_layer_of_dp_nn_is_walked():
    classes = {name for name in nn.__all__ if isinstance(getattr(nn, name, None), type)
               and issubclass(getattr(nn, name), nn.Module)}
    walked = {k.split("-")[0] for k in LAYERS}
    assert classes - NO_FORWARD == walked


def _run(name, compiled):
    build, batch, bad, scaled = LAYERS[name]
    dp.manual_seed(0)
    layer = build()
    scale = nn.Parameter(np.full((), 1.5, np.float32))
    opt = dp.optim.SGD(list(layer.parameters()) + [scale], lr=0.1, momentum=0.9)

    def step(*args):
        opt.zero_grad()
        args = (args[0] * scale,) + args[1:] if scaled else args
        out = layer(*args)
        loss = out if out.ndim == 0 else (out * out).mean()
        if not loss.requires_grad:  # (a layer that neither trains nor passes a gradient back)
            return loss, out, None
        loss.backward()
        opt.step()
        return loss, out, getattr(layer, "weight", None)

    fn = dp.compile(step, strict=True) if compiled else step
    rng = np.random.default_rng(0)
    results, errors = [], []
    for i in range(STEPS):
        r = fn(*batch(rng, i))
        results.append((tuple(type(x) for x in r), [np.array(x.data) if x is not None else None for x in r]))
    for args, kind in bad:
        with pytest.raises(kind) as e:
            fn(*args)
        errors.append(str(e.value))
    for i in range(STEPS, STEPS + 2):  # and on after the errors
        r = fn(*batch(rng, i))
        results.append((tuple(type(x) for x in r), [np.array(x.data) if x is not None else None for x in r]))
    if compiled:
        assert fn.replays >= STEPS - 2, f"{name}: replayed {fn.replays} of {STEPS + 2} calls"
    return layer, scale, results, errors


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_compiled_equals_eager(name):
    m_e, s_e, res_e, err_e = _run(name, compiled=False)
    m_c, s_c, res_c, err_c = _run(name, compiled=True)
    sd_e, sd_c = m_e.state_dict(), m_c.state_dict()
    assert sd_e.keys() == sd_c.keys()
    for k in sd_e:
        assert sd_e[k].dtype == sd_c[k].dtype and np.array_equal(sd_e[k], sd_c[k]), f"{name}: {k} differs"
    assert np.array_equal(s_e.data, s_c.data)
    assert err_e == err_c
    for i, ((types_e, vals_e), (types_c, vals_c)) in enumerate(zip(res_e, res_c)):
        assert types_e == types_c, f"{name}: call {i} returned {types_c}, eager {types_e}"
        for a, b in zip(vals_e, vals_c):
            assert (a is None and b is None) or np.array_equal(a, b), f"{name}: call {i} returned other values"


def test_embedding_padding_row_never_trained_and_bad_index_raises_on_replay():
    """The padding row stays zero whatever batches were recorded; a negative index raises IndexError."""
    dp.manual_seed(0)
    emb = nn.Embedding(5, 2, padding_idx=0)
    opt = dp.optim.SGD(emb.parameters(), lr=0.5)

    @dp.compile(strict=True)
    def step(idx):
        opt.zero_grad()
        loss = (emb(idx) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):  # recorded and replayed without the padding index
        step(dp.tensor(np.array([1, 2, 3])))
    step(dp.tensor(np.array([0, 0, 4])))
    assert step.replays >= 2
    assert np.array_equal(emb.weight.data[0], np.zeros(2, np.float32))
    assert emb.weight.grad.data[0].tolist() == [0.0, 0.0] and np.all(emb.weight.grad.data[4] != 0)
    before = emb.weight.data.copy()
    with pytest.raises(IndexError, match="index -1 is out of range for 5 embeddings"):
        step(dp.tensor(np.array([1, -1, 2])))
    assert np.array_equal(emb.weight.data, before)  # nothing trained by the refused batch


def test_batchnorm_counts_every_replayed_batch():
    dp.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    opt = dp.optim.SGD(bn.parameters(), lr=0.1)

    @dp.compile(strict=True)
    def step(x):
        opt.zero_grad()
        loss = (bn(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    x = dp.tensor(np.arange(12, dtype=np.float32).reshape(4, 3) ** 1.5)
    for _ in range(6):
        step(x)
    assert step.replays == 4
    assert int(bn.num_batches_tracked.data) == 6
