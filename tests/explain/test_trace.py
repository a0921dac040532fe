"""dp.explain.trace: deltas from the engine, the back-propagation identities, textbook output."""
import json
from importlib import resources

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn

MAZUR = json.loads(resources.files("deltaprop.explain").joinpath("mazur.json").read_text())
REC = {k: v["recomputed"] for k, v in MAZUR["values"].items()}


def half_sse(out, t):
    return 0.5 * ((t - out) ** 2).sum()


def mazur_model():
    model = nn.Sequential(nn.Linear(2, 2, dtype=np.float64), nn.Sigmoid(), nn.Linear(2, 2, dtype=np.float64),
                          nn.Sigmoid())
    model.load_state_dict({"0.weight": np.array([[0.15, 0.2], [0.25, 0.3]]), "0.bias": np.array([0.35, 0.35]),
                           "2.weight": np.array([[0.4, 0.45], [0.5, 0.55]]), "2.bias": np.array([0.6, 0.6])})
    return model


ACTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.1),
        "softplus": nn.Softplus}


def random_net(sizes, act, seed):
    rng = np.random.default_rng(seed)
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, dtype=np.float64)
        lin.load_state_dict({"weight": rng.normal(size=(b, a)), "bias": rng.normal(size=b)})
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(ACTS[act]())
    return nn.Sequential(*mods)


def test_mazur_numbers():
    tr = dp.explain.trace(mazur_model(), np.array([0.05, 0.1]), np.array([0.01, 0.99]), half_sse, lr=0.5)
    h, o = tr.layers
    assert len(tr.layers) == 2
    f = MAZUR["float64"]
    np.testing.assert_allclose(h.net[0], f["net_h"], rtol=1e-12)
    np.testing.assert_allclose(h.out[0], f["out_h"], rtol=1e-12)
    np.testing.assert_allclose(o.net[0], f["net_o"], rtol=1e-12)
    np.testing.assert_allclose(o.out[0], f["out_o"], rtol=1e-12)
    np.testing.assert_allclose(o.delta[0], f["delta_o (dE/dnet_o)"], rtol=1e-12)
    np.testing.assert_allclose(h.delta[0], f["delta_h (dE/dnet_h)"], rtol=1e-12)
    np.testing.assert_allclose(tr.grads["2.weight"], f["dE/dW_out rows o1 (w5,w6), o2 (w7,w8)"], rtol=1e-12)
    np.testing.assert_allclose(tr.grads["0.weight"], f["dE/dW_hidden rows h1 (w1,w2), h2 (w3,w4)"], rtol=1e-12)
    np.testing.assert_allclose(tr.updated["2.weight"], f["W_out after 1 update"], rtol=1e-12)
    np.testing.assert_allclose(tr.updated["0.weight"], f["W_hidden after 1 update"], rtol=1e-12)
    assert tr.loss == pytest.approx(f["E_total"], rel=1e-12)
    for key, name in [("2.weight", "dE_total/dw5"), ("0.weight", "dE_total/dw1")]:
        assert tr.grads[key][0, 0] == pytest.approx(REC[name], rel=1e-9)


def test_chain_text_for_output_and_hidden_weights():
    tr = dp.explain.trace(mazur_model(), np.array([0.05, 0.1]), np.array([0.01, 0.99]), half_sse, lr=0.5)
    s = str(tr.chain("2.weight", (0, 0)))
    assert "dE/dw5 = dE/dout_o1 × dout_o1/dnet_o1 × dnet_o1/dw5" in s
    assert "0.74136507 × 0.186815602 × 0.593269992 = 0.0821670406" in s
    s = str(tr.chain("0.weight", (0, 0)))
    assert "dE/dw1 = dE/dout_h1 × dout_h1/dnet_h1 × dnet_h1/dw1" in s
    for number in ("0.0553994247", "-0.0190491183", "0.0363503064", "0.241300709", "0.000438567734", "0.149780716"):
        assert number in s
    assert "via o1" not in s   # the layer rule by default; the path expansion only when asked
    assert "via o1" in str(tr.chain("0.weight", (0, 0)).paths())
    assert "0.00877135469" in str(tr.chain("0.bias", 0))
    with pytest.raises(KeyError):
        tr.chain("5.weight", (0, 0))
    with pytest.raises(IndexError):
        tr.chain("2.weight", (2, 0))


def test_trace_changes_no_weight_and_no_grad():
    model = mazur_model()
    before = model.state_dict()
    p0 = model[0].weight
    p0.grad = dp.tensor(np.full((2, 2), 7.0))
    tr = dp.explain.trace(model, np.array([0.05, 0.1]), np.array([0.01, 0.99]), half_sse, lr=0.5)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    np.testing.assert_array_equal(np.asarray(p0.grad), np.full((2, 2), 7.0))
    assert model[2].weight.grad is None
    # arrays handed out are copies
    tr.grads["2.weight"][:] = 0
    tr.layers[0].net[:] = 0
    assert model[2].weight.grad is None
    np.testing.assert_array_equal(model.state_dict()["0.weight"], before["0.weight"])


@pytest.mark.parametrize("sizes, act, batch, seed", [
    ([3, 5, 4, 2], "tanh", 1, 0), ([4, 6, 6, 6, 3], "sigmoid", 5, 1), ([2, 8, 1], "relu", 7, 2),
    ([5, 3, 3, 3, 3, 3, 2], "softplus", 3, 3), ([3, 4, 4, 2], "leaky", 4, 4),
])
def test_backprop_identities_on_random_deep_nets(sizes, act, batch, seed):
    model = random_net(sizes, act, seed)
    rng = np.random.default_rng(seed + 100)
    x = rng.normal(size=(batch, sizes[0]))
    t = rng.normal(size=(batch, sizes[-1]))
    tr = dp.explain.trace(model, x, t, half_sse)
    assert len(tr.layers) == len(sizes) - 1
    assert tr.updated == {}
    # the engine's own gradients, by an ordinary backward on a copy
    twin = random_net(sizes, act, seed)
    half_sse(twin(dp.tensor(x)), dp.tensor(t)).backward()
    lin = [m for m in twin if isinstance(m, nn.Linear)]
    for l, layer in enumerate(tr.layers):
        assert layer.net.shape == layer.delta.shape == (batch, sizes[l + 1])
        # delta x input == the engine's weight gradient, for every weight
        np.testing.assert_allclose(layer.delta.T @ layer.input, np.asarray(lin[l].weight.grad), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(layer.delta.sum(0), np.asarray(lin[l].bias.grad), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(tr.grads[f"{layer.key}.weight"], np.asarray(lin[l].weight.grad), rtol=1e-12)
        if l + 1 < len(tr.layers):
            nxt = tr.layers[l + 1]
            # hidden delta = f'(net) * sum_k w_kj delta_k: the error propagated backwards
            h = dp.tensor(layer.net)
            fprime = np.asarray(dp.grad(lambda z: ACTS[act]()(z).sum())(h))
            np.testing.assert_allclose(layer.delta, fprime * (nxt.delta @ nxt.weight), rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(nxt.input, layer.out)
    # output delta for the half squared error with a linear output layer: out - t
    np.testing.assert_allclose(tr.layers[-1].delta, tr.layers[-1].out - t, rtol=1e-12, atol=1e-14)


def test_hidden_chain_paths_sum_to_the_engine_value_in_deeper_nets():
    model = random_net([2, 3, 3, 2], "tanh", 5)
    tr = dp.explain.trace(model, np.array([0.3, -0.7]), np.array([0.1, 0.2]), half_sse)
    c = tr.chain("0.weight", (1, 0))
    assert isinstance(c, dp.explain.Chain)
    s = str(c.paths())
    assert "sum over the 6 path(s)" in s
    assert ("%.9g" % tr.grads["0.weight"][1, 0]) in s
    assert ("%.9g" % tr.layers[0].dout[0, 1]) in s


def test_one_dimensional_input_is_a_batch_of_one_and_targets_may_be_tensors():
    model = random_net([3, 4, 2], "tanh", 6)
    tr = dp.explain.trace(model, [0.1, 0.2, 0.3], dp.tensor(np.array([0.0, 1.0])), half_sse, lr=0.1)
    assert tr.layers[0].net.shape == (1, 4) and tr.layers[1].out.shape == (1, 2)
    for k, g in tr.grads.items():
        np.testing.assert_allclose(tr.updated[k], model.state_dict()[k] - 0.1 * g)
    assert set(tr.grads) == set(model.state_dict())


def test_softmax_cross_entropy_output_delta_is_p_minus_onehot():
    model = random_net([2, 5, 3], "tanh", 7)
    x = np.array([[0.5, -0.2]])
    tr = dp.explain.trace(model, x, np.array([2]), nn.functional.cross_entropy)
    z = tr.layers[-1].net[0]
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(tr.layers[-1].delta[0], p - np.eye(3)[2], rtol=1e-12)


def test_tables():
    tr = dp.explain.trace(mazur_model(), np.array([0.05, 0.1]), np.array([0.01, 0.99]), half_sse, lr=0.5)
    text = str(tr)
    for s in ("0.593269992", "0.75136507", "0.138498562", "0.0821670406", "0.35891648", "w5", "o1", "h2"):
        assert s in text
    md = tr.to_markdown()
    assert "| o1 | 1.10590597 | 0.75136507 | 0.01 | 0.74136507 | 0.186815602 | 0.138498562 |" in md
    h = tr.to_html()
    assert h == tr._repr_html_() and "<table>" in h and "0.0821670406" in h
    generic = dp.explain.trace(random_net([3, 2, 2], "tanh", 8), np.ones((2, 3)), np.zeros((2, 2)), half_sse)
    assert "o1" in str(generic) and "h2" in str(generic) and "sample" in str(generic)
    assert "sum over the batch of 2" in str(generic.chain("2.weight", (1, 1)))


def test_rejects_non_elementwise_layers_after_linear():
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Linear(4, 2, dtype=np.float64))
    tr = dp.explain.trace(model, np.ones(3), np.zeros(2), half_sse)
    assert len(tr.layers) == 2
    with pytest.raises(TypeError):
        dp.explain.trace(nn.Tanh(), np.ones(3), np.zeros(3), half_sse)
