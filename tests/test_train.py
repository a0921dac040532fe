"""deltaprop.train: build_mlp, fit, evaluate, reproducibility, NaN detection."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import train as tr
from deltaprop.nn import functional as F


def moons_loader(seed=0, batch_size=32):
    X, y = dp.data.moons(n=200, noise=0.1, seed=0)
    loader = dp.data.DataLoader(dp.data.TensorDataset(X, y), batch_size=batch_size, shuffle=True, seed=seed)
    return X, y, loader


def make(seed=0, hidden=(8,), activation="tanh"):
    dp.manual_seed(seed)
    model = tr.build_mlp([2, *hidden, 2], activation)
    opt = dp.optim.Adam(model.parameters(), lr=0.01)
    return model, opt


def test_build_mlp_layout():
    dp.manual_seed(0)
    m = tr.build_mlp([64, 32, 16, 10], "relu")
    assert list(m.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert m[0].weight.shape == (32, 64) and m[4].weight.shape == (10, 16)
    assert isinstance(m[1], dp.nn.ReLU) and isinstance(m[3], dp.nn.ReLU)
    assert len(m) == 5
    m2 = tr.build_mlp([2, 2, 2], "sigmoid", output_activation="sigmoid", dtype=np.float64)
    assert isinstance(m2[3], dp.nn.Sigmoid) and m2[0].weight.dtype == np.float64
    assert len(tr.build_mlp([3, 2], "tanh")) == 1


@pytest.mark.parametrize("name, cls", [("relu", "ReLU"), ("tanh", "Tanh"), ("sigmoid", "Sigmoid"),
                                       ("leaky_relu", "LeakyReLU"), ("gelu", "GELU")])
def test_activations(name, cls):
    assert type(tr.activation_module(name)).__name__ == cls


def test_build_mlp_errors():
    with pytest.raises(ValueError, match="swish"):
        tr.build_mlp([2, 2], "swish")
    with pytest.raises(ValueError, match="sizes"):
        tr.build_mlp([2], "relu")


def test_fit_learns_and_records_history():
    X, y, loader = moons_loader()
    model, opt = make()
    seen = []
    batches = []
    h = tr.fit(model, F.cross_entropy, opt, loader, 30, eval_sets={"train": (X, y)},
               on_epoch=lambda e, r: seen.append((e, dict(r))), on_batch=lambda e, s, l: batches.append((e, s)))
    assert h.epochs == list(range(1, 31))
    assert [e for e, _ in seen] == h.epochs
    assert len(batches) == 30 * len(loader) and batches[0] == (1, 1) and batches[-1] == (30, len(loader))
    assert set(h.metrics) == {"train_loss", "train_eval_loss", "train_accuracy"}
    assert h.metrics["train_loss"][-1] < h.metrics["train_loss"][0]
    assert h.last("train_accuracy") > 0.85
    res = tr.evaluate(model, X, y, F.cross_entropy)
    assert res["accuracy"] == h.last("train_accuracy")
    assert res["loss"] == pytest.approx(h.last("train_eval_loss"))


def test_epoch_mean_loss_is_sample_weighted():
    X, y, _ = moons_loader()
    loader = dp.data.DataLoader(dp.data.TensorDataset(X, y), batch_size=150)  # batches of 150 and 50
    model, _ = make()
    opt = dp.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the weights never change
    h = tr.fit(model, F.cross_entropy, opt, loader, 1)
    full = tr.evaluate(model, X, y, F.cross_entropy)["loss"]
    assert h.last("train_loss") == pytest.approx(full, rel=1e-5)


def test_fit_is_reproducible_and_resumable():
    X, y, loader = moons_loader()
    model, opt = make()
    straight = tr.fit(model, F.cross_entropy, opt, loader, 4)
    w_straight = model.state_dict()

    _, _, loader2 = moons_loader()
    m2, o2 = make()
    tr.fit(m2, F.cross_entropy, o2, loader2, 2)
    sd, osd = m2.state_dict(), o2.state_dict()
    _, _, loader3 = moons_loader()
    m3, o3 = make(seed=123)  # different init, overwritten by the saved state
    m3.load_state_dict(sd)
    o3.load_state_dict(osd)
    resumed = tr.fit(m3, F.cross_entropy, o3, loader3, 4, start_epoch=2)
    assert resumed.epochs == [3, 4]
    assert resumed.metrics["train_loss"] == straight.metrics["train_loss"][2:]
    for k, v in m3.state_dict().items():
        assert v.tobytes() == w_straight[k].tobytes()


def test_nan_loss_raises_with_epoch_and_step_and_no_step_taken():
    X, y, loader = moons_loader(batch_size=50)
    model, opt = make()
    calls = []

    def loss_fn(out, t):
        calls.append(1)
        loss = F.cross_entropy(out, t)
        return loss * float("nan") if len(calls) == 7 else loss  # epoch 2, step 3 (4 steps/epoch)
    before = {}
    with pytest.raises(tr.NonFiniteLossError, match=r"epoch 2, step 3 of 4") as info:
        # (eager: a compiled step would run loss_fn's Python, the call counter, only while recording;
        # tests/compile/test_fit.py has the compiled loop's own NaN test)
        tr.fit(model, loss_fn, opt, loader, 5, compile=False,
               on_batch=lambda e, s, l: before.update(model.state_dict()))
    assert info.value.epoch == 2 and info.value.step == 3
    assert isinstance(info.value, FloatingPointError)
    for k, v in model.state_dict().items():  # the optimizer did not step on the NaN loss
        assert np.array_equal(v, before[k])


def test_nonfinite_parameters_detected_at_epoch_end():
    X, y, loader = moons_loader(batch_size=200)
    model, opt = make()

    class Poison:
        def zero_grad(self):
            opt.zero_grad()

        def step(self):
            opt.step()
            with dp.no_grad():
                model[0].weight.data[0, 0] = np.inf

    with pytest.raises(tr.NonFiniteLossError, match="parameters"):
        tr.fit(model, lambda o, t: F.cross_entropy(o, t), Poison(), loader, 1)


def test_mse_half_sum_matches_mazur():
    out = dp.tensor(np.array([[0.75136507, 0.772928465]]))
    t = dp.tensor(np.array([[0.01, 0.99]]))
    assert tr.mse_half_sum(out, t).item() == pytest.approx(0.298371109, abs=1e-9)


def test_accuracy_classification_and_regression():
    assert tr.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    assert tr.accuracy(np.array([[0.2, 0.7], [0.6, 0.4]]), np.array([[0.01, 0.99], [0.01, 0.99]])) == 0.5


def test_history_round_trip():
    h = tr.History()
    h.append(1, {"train_loss": 0.5, "test_accuracy": 0.9})
    h.append(2, {"train_loss": 0.25, "test_accuracy": 0.95})
    h2 = tr.History.from_dict(h.to_dict())
    assert h2.epochs == [1, 2] and h2.metrics == h.metrics
    assert h2.last("train_loss") == 0.25
