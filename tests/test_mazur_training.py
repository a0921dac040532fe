"""The published 2-2-2 example (Matt Mazur), trained through the public API: dp.nn in float64
and dp.optim.SGD over the two weight matrices only (biases fixed). Figures from the reference
(src/deltaprop/explain/mazur.json, 'recomputed': the post's own after-training figures do not
follow its rule; see the note there)."""
import numpy as np
import pytest

import deltaprop as dp


def build():
    l1 = dp.nn.Linear(2, 2, dtype=np.float64)
    l2 = dp.nn.Linear(2, 2, dtype=np.float64)
    model = dp.nn.Sequential(l1, dp.nn.Sigmoid(), l2, dp.nn.Sigmoid())
    model.load_state_dict({"0.weight": np.array([[0.15, 0.20], [0.25, 0.30]]), "0.bias": np.array([0.35, 0.35]),
                           "2.weight": np.array([[0.40, 0.45], [0.50, 0.55]]), "2.bias": np.array([0.60, 0.60])})
    opt = dp.optim.SGD([l1.weight, l2.weight], lr=0.5)
    return model, opt


X = dp.tensor(np.array([[0.05, 0.10]]))
T = dp.tensor(np.array([[0.01, 0.99]]))


def error(model):
    return 0.5 * ((T - model(X)) ** 2).sum()


def step(model, opt):
    opt.zero_grad()
    e = error(model)
    e.backward()
    opt.step()
    return e


def test_first_step_figures():
    model, opt = build()
    e = error(model)
    assert e.item() == pytest.approx(0.298371109, abs=5e-10)
    e.backward()
    w = model[2].weight.grad.numpy()
    assert w[0, 0] == pytest.approx(0.0821670406, abs=5e-11)  # dE/dw5
    np.testing.assert_allclose(w, [[0.08216704056423077, 0.08266762784753325],
                                   [-0.02260254047747507, -0.022740242215978222]], rtol=1e-12)
    np.testing.assert_allclose(model[0].weight.grad.numpy(), [[0.0004385677344743465, 0.000877135468948693],
                                                              [0.0004977127352608599, 0.0009954254705217198]],
                               rtol=1e-12)
    opt.step()
    assert model[2].weight.numpy()[0, 0] == pytest.approx(0.35891648, abs=5e-9)   # w5+
    assert model[0].weight.numpy()[0, 0] == pytest.approx(0.149780716, abs=5e-10)  # w1+
    assert model[0].bias.numpy().tolist() == [0.35, 0.35]  # biases are not updated
    assert error(model).item() == pytest.approx(0.291027774, abs=5e-10)


def test_after_10000_updates():
    model, opt = build()
    for _ in range(10000):
        step(model, opt)
    assert error(model).item() == pytest.approx(3.51018778e-05, rel=1e-8)
    out = model(X).numpy()[0]
    np.testing.assert_allclose(out, [0.01591362044355068, 0.9840642735146238], rtol=1e-10)  # 0.0159136204, 0.984064274
