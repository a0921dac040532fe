"""Weights between PyTorch and deltaprop (issue 14, point 2): a torch model's state_dict (torch
tensors, or a safetensors file written by safetensors.torch) loads into the same deltaprop
architecture and gives the same outputs; dp.save files load into torch with safetensors.torch."""
from __future__ import annotations

import numpy as np
import pytest

import deltaprop as dp


def _mlp(mod):
    return mod.Sequential(mod.Linear(6, 16), mod.ReLU(), mod.Linear(16, 8), mod.Tanh(), mod.Linear(8, 3))


def _cnn(mod):
    return mod.Sequential(mod.Conv2d(1, 4, 3, padding=1), mod.BatchNorm2d(4), mod.ReLU(), mod.MaxPool2d(2),
                          mod.Conv2d(4, 6, 3), mod.ReLU(), mod.Flatten(), mod.Linear(6 * 2 * 2, 5))


ARCH = {"mlp": (_mlp, (6,)), "cnn": (_cnn, (1, 8, 8))}


def _same_outputs(torch, dm, tm, shape, dtype=np.float32, tol=1e-6):
    x = np.random.default_rng(1).standard_normal((4,) + shape).astype(dtype)
    dm.eval()
    tm.eval()
    with torch.no_grad():
        want = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(dm(dp.tensor(x)).numpy(), want, rtol=tol, atol=tol)


def _train_torch_a_little(torch, tm, shape):
    """A few SGD steps (and BatchNorm running stats) so nothing is at its initial value."""
    opt = torch.optim.SGD(tm.parameters(), lr=0.1)
    for i in range(3):
        x = torch.randn((8,) + shape)
        opt.zero_grad()
        tm(x).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("arch", sorted(ARCH))
def test_torch_weights_into_deltaprop_and_back(torch, tmp_path, arch):
    from safetensors.torch import load_file, save_file

    make, shape = ARCH[arch]
    torch.manual_seed(0)
    tm = make(torch.nn)
    _train_torch_a_little(torch, tm, shape)
    dm = make(dp.nn)
    assert list(dm.state_dict()) == list(tm.state_dict())

    # 1. torch tensors straight from state_dict()
    dm.load_state_dict(tm.state_dict())
    _same_outputs(torch, dm, tm, shape)

    # 2. a PyTorch safetensors file, read with dp.load (the numpy view of the same file)
    save_file(tm.state_dict(), str(tmp_path / "torch.safetensors"))
    dm2 = make(dp.nn)
    dm2.load_state_dict(dp.load(tmp_path / "torch.safetensors"))
    _same_outputs(torch, dm2, tm, shape)

    # 3. and back: a dp.save file into torch with safetensors.torch
    for p in dm2.parameters():
        with dp.no_grad():
            p += 0.01  # different from tm's, so the load below must really happen
    dp.save(dm2.state_dict(), tmp_path / "dp.safetensors", metadata={"arch": arch})
    tm2 = make(torch.nn)
    missing = tm2.load_state_dict(load_file(str(tmp_path / "dp.safetensors")))
    assert not missing.missing_keys and not missing.unexpected_keys
    _same_outputs(torch, dm2, tm2, shape)


def test_parameters_requiring_grad_and_bfloat16(torch):
    torch.manual_seed(0)
    tm = _mlp(torch.nn)
    dm = _mlp(dp.nn)
    dm.load_state_dict(dict(tm.named_parameters()))  # tensors that require grad: detached on the way
    _same_outputs(torch, dm, tm, (6,))
    half = {k: v.to(torch.bfloat16) for k, v in tm.state_dict().items()}
    dm.load_state_dict(half)  # widened to float32, then kept in the model's dtype
    assert dm[0].weight.dtype == np.float32
    np.testing.assert_array_equal(dm[0].weight.numpy(), half["0.weight"].float().numpy())


def test_float64_model_from_torch(torch):
    torch.manual_seed(0)
    tm = _mlp(torch.nn).double()
    dm = _mlp(dp.nn).to(np.float64)
    dm.load_state_dict(tm.state_dict())
    _same_outputs(torch, dm, tm, (6,), dtype=np.float64, tol=1e-12)


def test_mismatched_torch_state_names_the_key(torch):
    tm = torch.nn.Sequential(torch.nn.Linear(6, 15))
    dm = dp.nn.Sequential(dp.nn.Linear(6, 16))
    with pytest.raises(dp.nn.StateDictError, match=r"0.weight: shape \(15, 6\) in the state_dict but \(16, 6\)"):
        dm.load_state_dict(tm.state_dict())
