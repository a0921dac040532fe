"""The playground's engine side: messages are checked, and every number the page shows is the
engine's (the layer rule equals dp.explain.trace on the same weights and batch to 1e-9)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.playground.session import (LIMITS, MAX_MESSAGE_BYTES, Config, MessageError, Session, make_data,
                                          parse_message)


def _model_of(frame: dict):
    """The network the frame's rule was computed on (its state), rebuilt here."""
    state = {k: np.array(v, dtype=np.float64) for k, v in frame["rule"]["state"].items()}
    c = frame["config"]
    sizes = [2] + [len(b) for b in frame["biases"]]
    mods = []
    acts = {"tanh": dp.nn.Tanh, "sigmoid": dp.nn.Sigmoid, "relu": dp.nn.ReLU, "leaky_relu": lambda: dp.nn.LeakyReLU(0.01)}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(dp.nn.Linear(a, b, dtype=np.float64))
        if i < len(sizes) - 2:
            mods.append(acts[c["activation"]]())
    if c["loss"] in ("mse", "sse"):
        mods.append(dp.nn.Sigmoid())
    model = dp.nn.Sequential(*mods)
    model.load_state_dict(state)
    return model


def _trace_from_frame(s: Session, frame: dict):
    """dp.explain.trace rebuilt from what the frame says it used: the state and the batch."""
    idx = np.array(frame["rule"]["batch_indices"])
    c = frame["config"]
    loss = {"cross_entropy": "bce_logits", "mse": "mse", "sse": "sse"}[c["loss"]]
    return dp.explain.trace(_model_of(frame), s.Xtr[idx], s.Ttr[idx], loss=loss, lr=c["learning_rate"])


# ------------------------------------------------------------------------------ messages
@pytest.mark.parametrize("text, words", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"type": "launch"}', "unknown message type"),
    ('{"type": 5}', "unknown message type"),
    ('{"type": "set"}', "missing field 'changes'"),
    ('{"type": "set", "changes": {}}', "non-empty object"),
    ('{"type": "set", "changes": {"learning_rate": "fast"}}', "learning_rate must be a finite number"),
    ('{"type": "set", "changes": {"learning_rate": NaN}}', "learning_rate must be a finite number"),
    ('{"type": "set", "changes": {"learning_rate": 1e400}}', "learning_rate must be a finite number"),
    ('{"type": "set", "changes": {"learning_rate": -1}}', "learning_rate must be between"),
    ('{"type": "set", "changes": {"batch_size": true}}', "batch_size must be a whole number"),
    ('{"type": "set", "changes": {"batch_size": 2.5}}', "batch_size must be a whole number"),
    ('{"type": "set", "changes": {"points": 100000000}}', "points must be between 20 and 2000"),
    ('{"type": "set", "changes": {"hidden": [8, 8, 8, 8, 8, 8, 8]}}', "at most 6 hidden layers"),
    ('{"type": "set", "changes": {"hidden": [100000]}}', "1 to 16 neurons"),
    ('{"type": "set", "changes": {"hidden": [0]}}', "1 to 16 neurons"),
    ('{"type": "set", "changes": {"hidden": "8,8"}}', "list of layer sizes"),
    ('{"type": "set", "changes": {"dataset": "/etc/passwd"}}', "dataset must be one of xor, circles"),
    ('{"type": "set", "changes": {"path": "x.html"}}', "unknown setting 'path'"),
    ('{"type": "save", "path": "/tmp/x.html"}', "save: unknown field(s) path"),
    ('{"type": "select", "layer": -1, "neuron": 0}', "layer must be a whole number >= 0"),
    ('{"type": "play", "id": "x"}', "id must be a whole number"),
])
def test_malformed_messages_are_refused_with_the_reason(text, words):
    with pytest.raises(MessageError) as err:
        parse_message(text)
    assert words in str(err.value)


def test_oversized_and_binary_messages_are_refused():
    big = json.dumps({"type": "set", "changes": {"dataset": "xor" + " " * MAX_MESSAGE_BYTES}})
    with pytest.raises(MessageError, match="message too large"):
        parse_message(big)
    with pytest.raises(MessageError, match="binary messages"):
        parse_message(b'{"type": "play"}')
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(MessageError):
        parse_message(deep)


def test_valid_messages_parse_to_checked_values():
    m = parse_message('{"type": "set", "id": 7, "changes": {"learning_rate": 3, "hidden": [8, 8], "noise": 0}}')
    assert m == {"type": "set", "id": 7, "changes": {"learning_rate": 3.0, "hidden": [8, 8], "noise": 0.0}}
    assert isinstance(m["changes"]["learning_rate"], float)
    assert parse_message('{"type": "select", "layer": 1, "neuron": 0}') == {"type": "select", "layer": 1, "neuron": 0}
    assert parse_message('{"type": "select", "layer": null, "neuron": null}')["layer"] is None
    assert LIMITS == {"hidden_layers": 6, "neurons": 16, "points": 2000}


# ------------------------------------------------------------------------------ the numbers
@pytest.mark.parametrize("cfg", [
    Config(dataset="xor", hidden=[8, 8], activation="tanh", batch_size=10, learning_rate=0.1),
    Config(dataset="moons", hidden=[3], activation="relu", loss="mse", batch_size=7, regularization="l2", reg_rate=0.01),
    Config(dataset="spirals", hidden=[5, 4, 3], activation="sigmoid", loss="sse", batch_size=4, regularization="l1",
           reg_rate=0.003),
    Config(dataset="gaussians", hidden=[], activation="leaky_relu", batch_size=25),
])
def test_rule_numbers_equal_trace_on_the_same_weights_and_batch(cfg):
    s = Session(cfg)
    s.advance(5)
    last = len(s.linears) - 1
    for layer, neuron in [(0, 0), (last, 0)] + ([(0, s.linears[0].weight.shape[0] - 1)] if last else []):
        s.select(layer, neuron, 2)
        frame = json.loads(json.dumps(s.frame(), allow_nan=False))    # through JSON, as the page gets it
        r = frame["rule"]
        tr = _trace_from_frame(s, frame)
        L = tr.layers[layer]
        for key, want in [("net", L.net[2, neuron]), ("out", L.out[2, neuron]), ("fprime", L.fprime[2, neuron]),
                          ("dout", L.dout[2, neuron]), ("delta", L.delta[2, neuron]),
                          ("delta_batch_mean", L.delta[:, neuron].mean())]:
            assert r[key][0] == pytest.approx(want, abs=1e-9, rel=1e-9), key
            assert r[key][1] == dp.explain.numbers.fmt(want, np.float64)   # printed as trace prints it
        W = tr.grads[f"{L.key}.weight"]
        for i, row in enumerate(r["incoming"][:L.weight.shape[1]]):
            assert row["grad"][0] == pytest.approx(W[neuron, i], abs=1e-9, rel=1e-9)
            assert row["w"][0] == L.weight[neuron, i]
            assert row["product"][0] == pytest.approx(L.delta[2, neuron] * L.input[2, i], abs=1e-12)
        assert r["incoming"][-1]["grad"][0] == pytest.approx(tr.grads[f"{L.key}.bias"][neuron], abs=1e-9)
        if layer < last:   # sum of w x delta of the next layer is dE/dout
            total = sum(t["product"][0] for t in r["terms"])
            assert total == pytest.approx(L.dout[2, neuron], abs=1e-12)
        assert r["name"] == L.names[neuron]
        # "this sample's own delta" is the delta of a trace of that sample alone
        idx = np.array(r["batch_indices"])
        own = dp.explain.trace(_model_of(frame), s.Xtr[idx[2:3]], s.Ttr[idx[2:3]], loss=tr.loss_kind)
        assert r["per_sample_delta"][0] == pytest.approx(own.layers[layer].delta[0, neuron], rel=1e-9, abs=1e-12)
        assert r["text"] == tr.text(sample=2)
        # the depth view is trace's delta_scale
        assert [d["mean_abs_delta"][0] for d in frame["depth"]] == pytest.approx([m for _, m, _ in tr.delta_scale],
                                                                                 rel=1e-12)


def test_the_next_step_applies_the_gradients_the_rule_shows():
    s = Session(Config(dataset="circles", hidden=[4], learning_rate=0.3, regularization="l2", reg_rate=0.1))
    s.advance(3)
    s.select(0, 1)
    r = s.frame()["rule"]
    s.advance(1)
    W = s.linears[0].weight.data
    for i, row in enumerate(r["incoming"][:2]):
        want = row["w"][0] - 0.3 * (row["grad"][0] + 0.1 * row["w"][0])     # L2: gradient + rate x w
        assert row["updated"][0] == pytest.approx(want, abs=1e-12)
        assert W[1, i] == pytest.approx(want, abs=1e-12)


def test_l1_penalty_gradient_matches_finite_differences():
    s = Session(Config(dataset="xor", hidden=[3], regularization="l1", reg_rate=0.05, learning_rate=0.2))
    w0 = {k: v.copy() for k, v in s.model.state_dict().items()}
    idx = s._batch().copy()
    s.advance(1)

    def total(state):
        m = Session(Config(dataset="xor", hidden=[3])).model
        m.load_state_dict(state)
        with dp.no_grad():
            out = m(dp.tensor(s.Xtr[idx]))
            E = dp.nn.functional.binary_cross_entropy_with_logits(out, dp.tensor(s.Ttr[idx])).item()
        return E + 0.05 * sum(np.abs(v).sum() for k, v in state.items() if k.endswith("weight"))

    key, ij = "0.weight", (1, 0)
    eps = 1e-6
    plus = {k: v.copy() for k, v in w0.items()}
    minus = {k: v.copy() for k, v in w0.items()}
    plus[key][ij] += eps
    minus[key][ij] -= eps
    fd = (total(plus) - total(minus)) / (2 * eps)
    applied = (w0[key][ij] - s.model.state_dict()[key][ij]) / 0.2
    assert applied == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_knobs_act_at_the_next_step_without_a_new_network():
    s = Session(Config(dataset="moons", hidden=[4, 4]))
    s.advance(4)
    before = {k: v.copy() for k, v in s.model.state_dict().items()}
    s.apply({"learning_rate": 1.0, "batch_size": 3, "speed": 7, "regularization": "l2", "reg_rate": 0.0})
    assert s.steps == 4                           # same network, same step
    assert all(np.array_equal(before[k], v) for k, v in s.model.state_dict().items())
    assert s.trace.batch == 3 and s.trace.lr == 1.0
    s.apply({"hidden": [2]})                      # architecture: a new network, step 0
    assert s.steps == 0 and [l.weight.shape for l in s.linears] == [(2, 2), (1, 2)]
    n = len(s.Xtr)
    s.apply({"train_ratio": 0.8, "points": 100})  # data: new points
    assert len(s.Xtr) == 80 and len(s.Xte) == 20 and n != 80


def test_the_frame_shows_the_engines_plane_and_losses():
    s = Session(Config(dataset="xor", hidden=[3], activation="relu"))
    s.advance(2)
    f = json.loads(json.dumps(s.frame(), allow_nan=False))
    with dp.no_grad():
        out = s.model(dp.tensor(s.grid)).sigmoid().numpy()[:, 0]
        E = dp.nn.functional.binary_cross_entropy_with_logits(s.model(dp.tensor(s.Xte)),
                                                             dp.tensor(s.Tte)).item()
    import base64
    got = np.frombuffer(base64.b64decode(f["boundary"]["data"]), dtype=np.uint8)
    assert np.array_equal(got, np.clip(np.rint(out * 255), 0, 255).astype(np.uint8))
    assert f["test_loss"] == pytest.approx(E, rel=1e-12)
    assert f["names"][1:] == [list(l.names) for l in s.trace.layers]
    assert len(f["heatmaps"]) == 3 and len(f["heatmaps"][1]) == 3


def test_mazur_example_reproduces_the_posts_first_update():
    s = Session()
    s.apply({"dataset": "mazur"})
    assert s.config.hidden == [2] and s.config.activation == "sigmoid" and s.config.loss == "sse"
    f = s.frame()
    assert f["names"] == [["i1", "i2"], ["h1", "h2"], ["o1", "o2"]]
    assert f["train_loss"] == pytest.approx(0.298371109, abs=1e-9)     # the post's E_total
    s.advance(1)
    W2 = s.model.state_dict()["2.weight"]
    assert W2[0, 0] == pytest.approx(0.35891648, abs=1e-8)               # the post's w5+
    with pytest.raises(MessageError, match="not class labels"):
        s.apply({"loss": "cross_entropy"})


def test_divergence_pauses_and_says_the_learning_rate_is_too_large():
    s = Session(Config(dataset="circles", hidden=[8, 8], activation="relu", loss="mse", learning_rate=100.0))
    s.playing = True
    s.advance(300)
    f = s.frame()
    if f["notice"] is None:   # mse with sigmoid output saturates instead of blowing up: then it must be finite
        assert np.isfinite(s.train_loss)
    else:
        assert "learning rate is too large" in f["notice"] and s.playing is False


def test_select_out_of_range_is_refused():
    s = Session(Config(hidden=[4]))
    with pytest.raises(MessageError, match="layer 5 does not exist"):
        s.select(5, 0)
    with pytest.raises(MessageError, match="neurons 0..3"):
        s.select(0, 4)
    with pytest.raises(MessageError, match="samples 0..9"):
        s.select(0, 0, 10)


def test_save_renders_the_explain_report_of_the_run():
    s = Session(Config(dataset="moons", hidden=[3], batch_size=20))
    with pytest.raises(MessageError, match="train at least one step"):
        s.report_data()
    s.advance(12)
    d = s.report_data()
    assert d["steps"] == list(range(12)) and d["sizes"] == [2, 3, 1] and d["output"] == "sigmoid"
    # the recorded step 0 holds the initial weights and the gradient of step 0's batch
    first = Session(Config(dataset="moons", hidden=[3], batch_size=20))
    assert np.array_equal(d["params"][0][0]["W"], first.linears[0].weight.data)
    tr = first.trace
    assert np.allclose(d["params"][0][0]["gW"], tr.grads["0.weight"], atol=1e-12)
    html = s.report_html()
    assert html.startswith("<!DOCTYPE html>") and "deltaprop playground: moons" in html


def test_make_data_shapes_and_labels():
    for name in ("xor", "circles", "moons", "spirals", "gaussians"):
        X, y = make_data(name, 100, 0.1, 3)
        assert X.shape == (100, 2) and set(np.unique(y)) == {0, 1}, name
    X, y = make_data("xor", 200, 0.0, 0)
    assert np.array_equal(y, ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(int))


def test_a_frame_stops_training_at_its_time_budget():
    s = Session(Config(dataset="spirals", hidden=[16] * 6, points=2000, train_ratio=0.9, batch_size=2000))
    s.advance(100, budget_s=0.0)      # at least one step, then the budget is spent
    assert s.steps == 1
    s.advance(3)
    assert s.steps == 4


def test_the_diagnosis_names_a_learning_rate_too_large_in_explains_words():
    s = Session(Config(dataset="circles", hidden=[8, 8], activation="tanh", learning_rate=10.0))
    s.advance(60)
    assert s.losses[-1] > 1.25 * s.losses[0]           # the loss rose
    d = s.frame()["diagnosis"]
    assert d.startswith(f"The loss rose from {'%.4g' % s.losses[0]}")
    assert "the learning rate (10) is too large" in d and "vanishing" not in d.lower()
    want = dp.explain.lessons.training_lesson(s.losses, lr=10.0, hidden=[8, 8], activation="tanh",
                                              dataset="circles", loss="bce_logits", classes=2, errors=s.errors,
                                              samples=len(s.Xtr), unit="step")
    assert d.startswith(want.text)


def test_the_diagnosis_says_xor_needs_a_hidden_layer():
    s = Session(Config(dataset="xor", hidden=[], learning_rate=0.3, batch_size=50))
    for _ in range(12):
        s.advance(100)
    d = s.frame()["diagnosis"]
    assert "not linearly separable" in d and "hidden layer" in d
