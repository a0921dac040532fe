"""PyTorch (CPU) versions of the cases: nn modules, torch.optim, loss.backward()."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _common as C


def set_threads(n: int) -> None:
    """Use n threads in PyTorch's intra-op pool (the runner sets the BLAS pools by environment)."""
    torch.set_num_threads(n)


def _load(model: nn.Module, arrays: dict) -> None:
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})


def _mlp_model() -> nn.Sequential:
    i, h1, h2, k = C.MLP_SIZES
    model = nn.Sequential(nn.Linear(i, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, k))
    (w1, b1), (w2, b2), (w3, b3) = C.mlp_params()
    _load(model, {"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2, "4.weight": w3, "4.bias": b3})
    return model


def _classifier_step(model, opt, x, y):
    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def mlp_sgd():
    """The mlp-sgd case in PyTorch: returns the step that the worker times, one SGD step of the MLP 784-256-256-10 (float32, batch 128)."""
    x, y = (torch.from_numpy(a) for a in C.mlp_data())
    model = _mlp_model()
    return _classifier_step(model, torch.optim.SGD(model.parameters(), lr=C.MLP_LR), x, y)


def mlp_adam():
    """The mlp-adam case in PyTorch: returns the step that the worker times, one Adam step of the MLP 784-256-256-10 (float32, batch 128)."""
    x, y = (torch.from_numpy(a) for a in C.mlp_data())
    model = _mlp_model()
    opt = torch.optim.Adam(model.parameters(), lr=C.ADAM_LR, betas=C.ADAM_BETAS, eps=C.ADAM_EPS)
    return _classifier_step(model, opt, x, y)


def mazur():
    """The mazur case in PyTorch: returns the step that the worker times, one SGD step (lr 0.5) of Mazur's 2-2-2 sigmoid network, float64."""
    x, t = (torch.from_numpy(a) for a in C.mazur_data())
    model = nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2), nn.Sigmoid()).double()
    (w1, b1), (w2, b2) = C.mazur_params()
    _load(model, {"0.weight": w1, "0.bias": b1, "2.weight": w2, "2.bias": b2})
    opt = torch.optim.SGD(model.parameters(), lr=C.MAZUR_LR)

    def step():
        opt.zero_grad()
        loss = 0.5 * ((t - model(x)) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    return step


def cnn():
    """The cnn case in PyTorch: returns the step that the worker times, one SGD step of the small CNN (Conv2d 1->16 3x3, ReLU, MaxPool 2, Linear 256->10)."""
    x, y = (torch.from_numpy(a) for a in C.cnn_data())
    ch = C.CNN_CHANNELS
    model = nn.Sequential(
        nn.Conv2d(1, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(ch * 16, 10)
    )
    p = C.cnn_params()
    _load(model, {"0.weight": p["conv_w"], "0.bias": p["conv_b"], "4.weight": p["fc_w"], "4.bias": p["fc_b"]})
    return _classifier_step(model, torch.optim.SGD(model.parameters(), lr=C.CNN_LR), x, y)


def chain():
    """The chain case in PyTorch: returns the step that the worker times, forward and backward through 100,000 scalar ops (x*c, x+d alternating)."""
    half = C.CHAIN_OPS // 2

    def step():
        x0 = torch.tensor(C.CHAIN_X0, dtype=torch.float64, requires_grad=True)
        x = x0
        for _ in range(half):
            x = x * C.CHAIN_MUL
            x = x + C.CHAIN_ADD
        x.backward()
        return x0.grad

    return step


def micro():
    """The micro case in PyTorch: returns the step that the worker times, forward and backward through 1,000 adds of 4x4 float32 arrays."""
    a, b = (torch.from_numpy(v).requires_grad_() for v in C.micro_data())

    def step():
        a.grad = b.grad = None
        y = a
        for _ in range(C.MICRO_OPS):
            y = y + b
        loss = y.sum()
        loss.backward()
        return loss

    return step


def _train_model() -> nn.Sequential:
    torch.manual_seed(C.TRAIN["seed"])
    layers: list[nn.Module] = []
    n_in = 64
    for h in C.TRAIN["hidden"]:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        n_in = h
    layers.append(nn.Linear(n_in, 10))
    return nn.Sequential(*layers)


def _fit(record_rss: bool) -> dict:
    """The digits MLP trained by the plain PyTorch loop: Adam, shuffled mini-batches."""
    t0 = time.perf_counter()
    xtr, xte, ytr, yte = (torch.from_numpy(a) for a in C.digits_split())
    model = _train_model()
    opt = torch.optim.Adam(model.parameters(), lr=C.TRAIN["lr"])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(xtr, ytr), batch_size=C.TRAIN["batch_size"], shuffle=True,
        generator=torch.Generator().manual_seed(C.TRAIN["seed"]),
    )
    rss, accs, to_target = [], [], None
    for _epoch in range(C.TRAIN["epochs"]):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():  # both sets each epoch, as `deltaprop train` reports both
            train_acc = (model(xtr).argmax(1) == ytr).float().mean().item()
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        accs.append(acc)
        if to_target is None and acc >= C.TARGET_ACCURACY:
            to_target = time.perf_counter() - t0
        if record_rss:
            rss.append(C.rss_mb())
    seconds = time.perf_counter() - t0
    out = {"seconds": seconds, "test_accuracy": accs[-1], "seconds_to_target": to_target,
           "epochs": C.TRAIN["epochs"], "train_loss": float(loss), "train_accuracy": train_acc}
    if record_rss:
        out["rss_per_epoch_mb"] = rss
    return out


def train():
    """The train case in PyTorch: the `deltaprop train` defaults (digits MLP) as a PyTorch loop; seconds, accuracy, peak RSS."""
    r = _fit(record_rss=False)
    return {"value": r["seconds"], **r, "peak_rss_mb": C.peak_rss_mb()}


def memory():
    """The memory case in PyTorch: the train case's loop, reporting peak RSS and RSS after each epoch."""
    r = _fit(record_rss=True)
    rss = r["rss_per_epoch_mb"]
    return {"value": C.peak_rss_mb(), "rss_per_epoch_mb": rss,
            "growth_mb": rss[-1] - rss[1] if len(rss) > 1 else 0.0, "test_accuracy": r["test_accuracy"]}
