"""Module, Parameter, Sequential: registration, names, state_dict, modes, dtype, repr."""
import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn


def mlp():
    dp.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_parameter_is_a_tensor_requiring_grad():
    p = nn.Parameter(np.ones((2, 2), np.float64))
    assert isinstance(p, dp.Tensor) and p.requires_grad and p.is_leaf and p.dtype == np.float64
    assert not hasattr(p, "__dict__")
    assert repr(p).startswith("Parameter containing:\ntensor(")
    q = nn.Parameter(dp.tensor([1.0, 2.0]), requires_grad=False)
    assert not q.requires_grad and q.dtype == np.float32
    assert type(p * 2) is dp.Tensor


def test_registration_order_and_names():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
            self.scale = nn.Parameter(np.ones(1, np.float32))
            self.head = nn.Linear(3, 1, bias=False)
            self.note = "plain attribute"

        def forward(self, x):
            return self.head(self.body(x)) * self.scale

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "head.weight"]
    assert len(list(net.parameters())) == 4
    assert [type(m).__name__ for m in net.children()] == ["Sequential", "Linear"]
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Sequential", "Linear", "Tanh", "Linear"]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "head"]
    assert list(net.state_dict()) == names
    assert net.head.bias is None
    assert net(dp.ones(5, 2)).shape == (5, 1)
    with pytest.raises(TypeError):
        net.scale = dp.tensor([1.0])  # a plain Tensor cannot replace a Parameter
    del net.head
    assert "head.weight" not in dict(net.named_parameters())


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_state_dict_keys_and_copies():
    model = mlp()
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sd["0.weight"].shape == (4, 3) and sd["2.bias"].shape == (2,)
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    sd["0.weight"][...] = 123.0  # a copy: the model is untouched
    assert not np.any(model[0].weight.data == 123.0)
    kv = model.state_dict(keep_vars=True)
    assert kv["0.weight"] is model[0].weight


def test_load_state_dict_roundtrip_in_place_keeping_dtype():
    a, b = mlp(), mlp()
    for p in b.parameters():
        p.data[...] = 0.5
    w = a[0].weight
    arr = w.data
    a.load_state_dict({k: (dp.tensor(v) if k.endswith("bias") else v.astype(np.float64))
                       for k, v in b.state_dict().items()})
    assert a[0].weight is w and a[0].weight.data is arr  # in place
    assert w.dtype == np.float32
    for (k, v), (_, u) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(v, u)


def test_load_state_dict_rejects_without_changing_anything():
    model = mlp()
    before = model.state_dict()
    sd = model.state_dict()
    sd["0.weight"] = np.zeros((5, 3), np.float32)
    sd["0.bias"] = np.zeros(4, np.float32)  # valid, must not be applied either
    del sd["2.bias"]
    sd["9.weight"] = np.zeros(1)
    with pytest.raises(ValueError) as e:
        model.load_state_dict(sd)
    msg = str(e.value)
    assert "0.weight: shape (5, 3) in the state_dict but (4, 3) in the model" in msg
    assert "'2.bias'" in msg and "missing" in msg
    assert "'9.weight'" in msg and "unexpected" in msg
    assert isinstance(e.value, RuntimeError)  # as PyTorch raises
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_non_strict():
    model = mlp()
    res = model.load_state_dict({"0.bias": np.ones(4), "extra": np.ones(1)}, strict=False)
    assert res.missing_keys == ["0.weight", "2.weight", "2.bias"] and res.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model[0].bias.data, np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"0.bias: shape \(3,\)"):
        model.load_state_dict({"0.bias": np.ones(3)}, strict=False)


def test_train_eval_zero_grad():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.BatchNorm1d(2)))
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert model[2][0].training
    model(dp.randn(4, 2)).sum().backward()
    assert model[0].weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_dtype_casts_in_place():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    w = model[0].weight
    assert model.to(np.float64) is model
    assert model[0].weight is w and w.dtype == np.float64
    sd = model.state_dict()
    assert sd["1.running_mean"].dtype == np.float64 and sd["1.num_batches_tracked"].dtype == np.int64
    out = model(dp.tensor(np.ones((4, 2))))
    assert out.dtype == np.float64
    model.float()
    assert w.dtype == np.float32
    assert model.to("cpu") is model


def test_linear_dtype_and_default_dtype():
    assert nn.Linear(2, 2).weight.dtype == np.float32
    assert nn.Linear(2, 2, dtype=np.float64).bias.dtype == np.float64
    dp.set_default_dtype(np.float64)
    try:
        assert nn.Linear(2, 2).weight.dtype == np.float64
    finally:
        dp.set_default_dtype(np.float32)


def test_seed_makes_models_reproducible():
    dp.manual_seed(7)
    a = nn.Linear(5, 3)
    dp.manual_seed(7)
    b = nn.Linear(5, 3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    bound = 1 / np.sqrt(5)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.bias.data).max() <= bound


def test_sequential_indexing_slicing_iteration():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Sigmoid())
    assert len(model) == 4
    assert isinstance(model[0], nn.Linear) and isinstance(model[-1], nn.Sigmoid)
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    x = dp.randn(5, 3)
    np.testing.assert_allclose(model(x).data, model[2:](model[:2](x)).data)
    with pytest.raises(IndexError):
        model[4]
    model.append(nn.Tanh())
    assert len(model) == 5 and list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(TypeError):
        nn.Sequential(nn.Linear(1, 1), "relu")


def test_repr_like_pytorch():
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    assert repr(model) == ("Sequential(\n"
                           "  (0): Linear(in_features=784, out_features=256, bias=True)\n"
                           "  (1): ReLU()\n"
                           "  (2): Linear(in_features=256, out_features=10, bias=True)\n"
                           ")")
    nested = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Sequential(nn.Flatten(), nn.Dropout(0.2)))
    assert repr(nested) == ("Sequential(\n"
                            "  (0): Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))\n"
                            "  (1): Sequential(\n"
                            "    (0): Flatten(start_dim=1, end_dim=-1)\n"
                            "    (1): Dropout(p=0.2, inplace=False)\n"
                            "  )\n"
                            ")")
    assert repr(nn.BatchNorm1d(16)) == "BatchNorm1d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.MaxPool2d(2)) == "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(nn.Linear(2, 3, bias=False)) == "Linear(in_features=2, out_features=3, bias=False)"
    assert repr(nn.CrossEntropyLoss()) == "CrossEntropyLoss()"


def test_module_list_and_custom_depth():
    class Deep(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(n)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x).tanh()
            return x

    d = Deep(6)
    assert len(list(d.parameters())) == 12
    assert list(d.state_dict())[:2] == ["layers.0.weight", "layers.0.bias"]
    assert d(dp.randn(2, 4)).shape == (2, 4)


def test_requires_grad_and_apply():
    model = mlp()
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "ReLU", "Linear", "Sequential"]


def test_module_before_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()
