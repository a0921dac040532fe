"""The layer rule at any depth: deltas vs PyTorch, output deltas named for the loss, one sample
beside the batch mean, vanishing/exploding diagnosis, printing by dtype, refusal of non-chains."""
import re
import subprocess
import sys

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn


def sigmoid_net(sizes, seed, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, dtype=dtype)
        lin.load_state_dict({"weight": scale * rng.normal(size=(b, a)) / np.sqrt(a), "bias": 0.1 * rng.normal(size=b)})
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(nn.Sigmoid())
    return nn.Sequential(*mods)


def table_deltas(text, names):
    """{neuron name: printed delta} from the layer tables (the 'delta = dE/dnet' column)."""
    out = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] in names:
            out.setdefault(cells[0], cells)
    return out


def test_five_hidden_sigmoid_deltas_equal_torch(torch):
    sizes = [3, 4, 4, 4, 4, 4, 2]
    model = sigmoid_net(sizes, 0)
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    tr = dp.explain.trace(model, x, t, "mse", sample=2)
    # PyTorch: the same weights, retain_grad on every pre-activation
    h = torch.tensor(x, dtype=torch.float64)
    nets = []
    lin = [m for m in model if isinstance(m, nn.Linear)]
    for i, m in enumerate(lin):
        W = torch.tensor(np.asarray(m.weight.data), requires_grad=True)
        b = torch.tensor(np.asarray(m.bias.data), requires_grad=True)
        net = h @ W.T + b
        net.retain_grad()
        nets.append(net)
        h = torch.sigmoid(net) if i < len(lin) - 1 else net
    torch.nn.functional.mse_loss(h, torch.tensor(t)).backward()
    assert len(tr.layers) == 6
    for layer, net in zip(tr.layers, nets):
        np.testing.assert_allclose(layer.delta, net.grad.numpy(), rtol=1e-10, atol=1e-14)
    # the printed deltas (sample 2, %.9g) are those numbers
    text = str(tr)
    for layer, net in zip(tr.layers, nets):
        rows = table_deltas(text, layer.names)
        assert set(rows) == set(layer.names)
        for j, nm in enumerate(layer.names):
            printed = float(rows[nm][-2])   # delta, then the batch mean
            assert printed == pytest.approx(net.grad.numpy()[2, j], rel=1e-8, abs=1e-12)
            assert float(rows[nm][-1]) == pytest.approx(net.grad.numpy()[:, j].mean(), rel=1e-8, abs=1e-12)
    # the rule is written once per hidden layer
    assert text.count("f'(net_") >= 5 and "delta_h5 = f'(net_h5) * (W_o^T delta_o)" in text
    assert "delta_h1 = f'(net_h1) * (W_h2^T delta_h2)" in text
    # one naming: hidden layers 1..5 then the output layer, neurons numbered from 1
    assert [l.name for l in tr.layers] == [f"hidden layer {k}" for k in range(1, 6)] + ["output layer"]
    assert tr.layers[0].names == ["h1.1", "h1.2", "h1.3", "h1.4"] and tr.layers[-1].names == ["o1", "o2"]
    assert tr.layers[0].in_names == ["i1", "i2", "i3"] and tr.layers[1].in_names == tr.layers[0].names
    assert tr.param_name("10.weight", (1, 3)) == "w(h5.4→o2)" and tr.param_name("0.bias", (2,)) == "b(h1.3)"


def test_output_delta_is_named_for_the_loss():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 2))
    ce = dp.explain.trace(sigmoid_net([2, 3, 3], 0), x, np.array([0, 2, 1, 2]), "ce")
    assert "delta = p - y, p = softmax(net)" in str(ce) and "divided by the batch (4)" in str(ce)
    z = ce.layers[-1].net
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(ce.layers[-1].delta, (p - np.eye(3)[[0, 2, 1, 2]]) / 4, rtol=1e-12)
    # the library's own loss function is recognised too
    assert "p - y" in str(dp.explain.trace(sigmoid_net([2, 3, 3], 0), x, [0, 2, 1, 2], nn.functional.cross_entropy))
    model = nn.Sequential(*sigmoid_net([2, 3, 2], 1), nn.Sigmoid())
    t = rng.uniform(size=(4, 2))
    mse = dp.explain.trace(model, x, t, "mse")
    assert "2 (out - target) / 8 × f'(net)" in str(mse)
    sse = dp.explain.trace(model, x, t, lambda o, tt: 0.5 * ((tt - o) ** 2).sum())
    assert "-(target - out) × f'(net)" in str(sse)
    o = sse.layers[-1]
    np.testing.assert_allclose(o.delta, (o.out - t) * o.out * (1 - o.out), rtol=1e-12)
    bce = dp.explain.trace(sigmoid_net([2, 3, 1], 2), x, np.array([[0.], [1.], [1.], [0.]]), "bce_logits")
    assert "delta = sigmoid(net) - target, divided by 4" in str(bce)
    # a loss that is none of those: the general form, never a wrong name
    odd = dp.explain.trace(model, x, t, lambda o, tt: (o ** 3).sum())
    assert "dE/dout from the loss's own backward pass" in str(odd)
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        dp.explain.trace(model, x, t, "hinge")


def test_one_sample_beside_the_batch_mean():
    model = sigmoid_net([2, 3, 2], 4)
    x = np.arange(8.0).reshape(4, 2) / 10
    t = np.zeros((4, 2))
    tr = dp.explain.trace(model, x, t, "sse", sample=3)
    text = str(tr)
    assert "sample 3's, beside the batch mean" in text and "batch mean delta" in text
    row = table_deltas(text, ["h2"])["h2"]
    assert float(row[-2]) == pytest.approx(tr.layers[0].delta[3, 1], rel=1e-8)
    assert float(row[-1]) == pytest.approx(tr.layers[0].delta[:, 1].mean(), rel=1e-8)
    assert tr.text(sample=0) != text
    c = str(tr.chain("0.weight", (1, 0), sample=1))
    assert "sample 1 of 4" in c and "sum over the batch of 4" in c
    with pytest.raises(IndexError):
        tr.text(sample=4)


def test_chain_is_layer_by_layer_and_paths_only_when_asked():
    model = nn.Sequential(*sigmoid_net([2, 3, 3, 1], 5))
    tr = dp.explain.trace(model, np.array([0.3, -0.7]), np.array([0.5]), "sse")
    c = tr.chain("0.weight", (0, 1))
    assert isinstance(c, dp.explain.Chain)
    s = str(c)
    assert "path(s) from" not in s and "via" not in s
    for layer in tr.layers[1:]:
        for j, nm in enumerate(layer.names):
            assert f"delta_{nm} = " in s and ("%.9g" % layer.delta[0, j]) in s
    assert "delta_h1.1 = " in s and "delta_h1.2" not in s.split("hidden layer 1 (")[1].split("\n")[1]
    p = str(c.paths())
    assert "sum over the 3 path(s)" in p and p.count("via ") == 3
    assert ("%.9g" % tr.grads["0.weight"][0, 1]) in s and ("%.9g" % tr.grads["0.weight"][0, 1]) in p
    assert c.derivative == pytest.approx(tr.grads["0.weight"][0, 1])
    assert "<pre" in c._repr_html_() and "<pre" in c.paths()._repr_html_()


def test_many_neurons_show_the_largest_and_a_summary():
    model = sigmoid_net([2, 20, 1], 6)
    tr = dp.explain.trace(model, np.ones((1, 2)), np.zeros((1, 1)), "sse")
    text = str(tr)
    assert "15 more neurons (the 5 largest |delta| shown)" in text
    assert sum(1 for line in text.splitlines() if re.match(r"h\d+ ", line.strip())) == 5


def test_vanishing_and_exploding_are_diagnosed():
    rng = np.random.default_rng(7)
    x, t = rng.normal(size=(8, 4)), rng.normal(size=(8, 1))
    deep = dp.explain.trace(sigmoid_net([4] + [8] * 8 + [1], 0), x, t, "mse")
    norms = [m for _, m, _ in deep.delta_scale]
    ratios = [r for _, _, r in deep.delta_scale]
    assert ratios[0] is None and all(r == pytest.approx(b / a) for r, a, b in zip(ratios[1:], norms, norms[1:]))
    assert norms[0] / norms[-1] > 100
    d = deep.diagnosis
    assert d.startswith("Vanishing gradients") and "sigmoid" in d and "ReLU" in d and d in str(deep)
    blow = nn.Sequential(*sigmoid_net([4, 8, 8, 8, 1], 1, scale=1.0))
    lin = [m for m in blow if isinstance(m, nn.Linear)]
    with dp.no_grad():
        for m in lin:
            m.weight.data[...] = 30 * np.sign(m.weight.data) + m.weight.data
    ex = dp.explain.trace(nn.Sequential(*[m for m in blow if not isinstance(m, nn.Sigmoid)]), x, t, "mse")
    assert ex.diagnosis.startswith("Exploding gradients") and "clip_grad_norm_" in ex.diagnosis
    shallow = dp.explain.trace(sigmoid_net([4, 3, 1], 0), x, t, "mse")
    assert shallow.diagnosis is None and "|delta| by layer" in str(shallow)


def test_numbers_print_with_their_dtype_digits_and_never_minus_zero():
    m32 = nn.Sequential(nn.Linear(2, 2, dtype=np.float32), nn.Sigmoid(), nn.Linear(2, 2, dtype=np.float32), nn.Sigmoid())
    m32.load_state_dict({k: v.astype(np.float32) for k, v in dp.explain.mazur_model().state_dict().items()})
    tr = dp.explain.trace(m32, np.array([0.05, 0.1]), np.array([0.01, 0.99]), "sse", lr=0.5)
    text = str(tr)
    assert "0.150000006" not in text and " 0.15 " in text
    assert re.search(r"0\.7413651\b", text)          # float32: 7 digits
    assert "-0 " not in text and not re.search(r"[ (]-0(?![.\d])", text)
    zero = nn.Sequential(nn.Linear(2, 1, dtype=np.float64))
    zero.load_state_dict({"0.weight": np.array([[-0.0, 0.0]]), "0.bias": np.array([-0.0])})
    zt = dp.explain.trace(zero, np.array([[-1.0, 0.0]]), np.array([[0.0]]), "sse")
    assert not re.search(r"(?<![\w.])-0(?![.\d])", str(zt) + str(zt.chain("0.weight", (0, 0))))


def test_mazur_model_and_data_give_the_posts_numbers():
    model = dp.explain.mazur_model()
    assert all(v.dtype == np.float64 for v in model.state_dict().values())
    X, T = dp.data.mazur(np.float64)
    tr = dp.explain.trace(model, X, T, "sse", lr=0.5)
    s = str(tr)
    for v in ("0.593269992", "0.75136507", "0.298371109", "0.138498562", "0.0821670406", "0.35891648", "0.149780716"):
        assert v in s
    assert "-(target - out) × f'(net)" in s


def test_models_that_are_not_a_chain_are_refused_naming_the_module():
    bn = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64),
                       nn.Linear(4, 2, dtype=np.float64))
    with pytest.raises(ValueError, match=r"module '1' \(BatchNorm1d\) cannot be placed"):
        dp.explain.trace(bn, np.ones((2, 3)), np.zeros((2, 2)), "mse")
    sm = nn.Sequential(nn.Linear(3, 2, dtype=np.float64), nn.Softmax(dim=-1))
    with pytest.raises(ValueError, match=r"'1' \(Softmax\)"):
        dp.explain.trace(sm, np.ones((2, 3)), [0, 1], "ce")

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2, dtype=np.float64)

        def forward(self, x):
            return x + self.a(x)
    with pytest.raises(TypeError, match="Residual"):
        dp.explain.trace(Residual(), np.ones(2), np.zeros(2), "mse")
    nested = nn.Sequential(nn.Sequential(nn.Linear(2, 3, dtype=np.float64), nn.Tanh()), nn.Linear(3, 1, dtype=np.float64))
    tr = dp.explain.trace(nested, np.ones(2), np.zeros(1), "mse")
    assert [l.key for l in tr.layers] == ["0.0", "1"] and tr.layers[0].activation == "tanh"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "deltaprop", "explain", "trace", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_trace():
    r = run_cli()
    assert r.returncode == 0, r.stderr
    assert "0.138498562" in r.stdout and "-(target - out) × f'(net)" in r.stdout
    r = run_cli("--dataset", "xor", "--hidden", "0", "--loss", "bce")
    assert r.returncode == 0, r.stderr
    assert "2-1 network" in r.stdout and "delta = sigmoid(net) - target" in r.stdout
    r = run_cli("--dataset", "moons", "--hidden", "8,8,8,8,8", "--activation", "sigmoid", "--loss", "mse",
                "--sample", "5", "--weight", "0.weight[1,0]", "--paths")
    assert r.returncode == 0, r.stderr
    assert "sample 5's" in r.stdout and "Vanishing gradients" in r.stdout and "via " in r.stdout
    assert "delta_h5 = f'(net_h5) * (W_o^T delta_o)" in r.stdout
    for bad in (["--dataset", "spirals", "--loss", "bce"], ["--hidden", "x"], ["--dataset", "xor", "--sample", "9"],
                ["--loss", "hinge"], ["--weight", "7.weight[0,0]"]):
        r = run_cli(*bad)
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") <= 2, (bad, r.stderr)
    r = run_cli("no-such-model.safetensors")
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr


def test_cli_trace_of_a_trained_model_file(tmp_path):
    out = tmp_path / "m.safetensors"
    r = subprocess.run([sys.executable, "-m", "deltaprop", "train", "--dataset", "xor", "--hidden", "3",
                        "--epochs", "2", "--out", str(out), "--json"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_cli(str(out), "--sample", "2")
    assert r.returncode == 0, r.stderr
    assert "2-3-2 network" in r.stdout and "sample 2's" in r.stdout and "delta = p - y" in r.stdout
