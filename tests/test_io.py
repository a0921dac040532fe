"""Tests for deltaprop.io: safetensors model files and checkpoints."""
from __future__ import annotations

import copy
import json
import os
import pickle
import stat

import numpy as np
import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltaprop import io


# ----------------------------------------------------------------------------- fakes
# Small stand-ins that follow DESIGN.md's Module / Optimizer interfaces (PyTorch 2.x-like).

class FakeModule:
    """state_dict returns copies; load_state_dict validates every key and shape, then copies in place."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype=np.float32, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}

    def parameters(self) -> list[np.ndarray]:
        return list(self.params.values())

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, sd) -> None:
        if set(sd) != set(self.params):
            raise KeyError(f"keys differ: {sorted(set(sd) ^ set(self.params))}")
        for k, v in sd.items():
            if np.shape(v) != self.params[k].shape:
                raise ValueError(f"{k}: {np.shape(v)} vs {self.params[k].shape}")
        for k, v in sd.items():
            self.params[k][...] = np.asarray(v)  # in place, keeps dtype


class FakeAdam:
    """Adam with PyTorch 2.x's state_dict layout (state keyed by param index, params as ints)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 step_as_array: bool = True, groups: int = 1):
        params = list(params)
        hyper = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=False,
                     maximize=False, foreach=None, capturable=False)
        if groups == 1:
            self.param_groups = [dict(params=params, **hyper)]
        else:  # split params into two groups
            half = len(params) // 2
            self.param_groups = [dict(params=params[:half], **hyper), dict(params=params[half:], **hyper)]
        self.state: dict[int, dict] = {}
        self.step_as_array = step_as_array

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def step(self, grads) -> None:
        for i, (p, g) in enumerate(zip(self._params(), grads)):
            group = next(gr for gr in self.param_groups if any(q is p for q in gr["params"]))
            b1, b2 = group["betas"]
            s = self.state.setdefault(i, {
                "step": np.array(0.0, dtype=np.float32) if self.step_as_array else 0,
                "exp_avg": np.zeros_like(p), "exp_avg_sq": np.zeros_like(p)})
            s["step"] = s["step"] + 1
            t = float(s["step"])
            s["exp_avg"] = (b1 * s["exp_avg"] + (1 - b1) * g).astype(p.dtype)
            s["exp_avg_sq"] = (b2 * s["exp_avg_sq"] + (1 - b2) * g * g).astype(p.dtype)
            m = s["exp_avg"] / (1 - b1 ** t)
            v = s["exp_avg_sq"] / (1 - b2 ** t)
            p -= (group["lr"] * m / (np.sqrt(v) + group["eps"])).astype(p.dtype)

    def state_dict(self) -> dict:
        index = 0
        groups = []
        for g in self.param_groups:
            entry = {k: v for k, v in g.items() if k != "params"}
            entry["params"] = list(range(index, index + len(g["params"])))
            index += len(g["params"])
            groups.append(entry)
        return {"state": copy.deepcopy(self.state), "param_groups": groups}

    def load_state_dict(self, sd) -> None:
        groups = sd["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError("parameter groups differ")
        self.state = copy.deepcopy(dict(sd["state"]))
        for mine, theirs in zip(self.param_groups, groups):
            mine.update({k: v for k, v in theirs.items() if k != "params"})


FakeSGD = type("FakeSGD", (), {k: v for k, v in FakeAdam.__dict__.items() if not k.startswith("__")}
               | {"__init__": FakeAdam.__init__})  # same layout, unrelated class


SHAPES = {"0.weight": (4, 3), "0.bias": (4,), "2.weight": (2, 4), "2.bias": (2,)}


def grads_for(model: FakeModule, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in model.parameters()]


def trained(steps: int = 3, seed: int = 0, **adam_kw) -> tuple[FakeModule, FakeAdam]:
    model = FakeModule(SHAPES, seed=seed)
    opt = FakeAdam(model.parameters(), lr=0.01, **adam_kw)
    for s in range(steps):
        opt.step(grads_for(model, s))
    return model, opt


def assert_tree_equal(a, b) -> None:
    """Exact equality of nested state, including types (tuple stays tuple) and array dtypes."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_tree_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_tree_equal(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


# ----------------------------------------------------------------------------- save / load

DTYPES = [np.float32, np.float64, np.float16, np.int64, np.int32, np.int8, np.uint8,
          np.uint64, np.bool_, np.complex64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_roundtrip_preserves_dtype_shape_values(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 5)) * 50).astype(dtype)
    path = tmp_path / "m.safetensors"
    io.save({"w": arr, "scalar": arr[0, 0].reshape(()), "empty": arr[:0]}, path)
    out = io.load(path)
    for key, want in [("w", arr), ("scalar", arr[0, 0].reshape(())), ("empty", arr[:0])]:
        assert out[key].dtype == np.dtype(dtype)
        assert out[key].shape == want.shape
        np.testing.assert_array_equal(out[key], want)


def test_loaded_arrays_are_fresh_writable_and_in_saved_order(tmp_path):
    path = tmp_path / "m.safetensors"
    keys = ["10.weight", "2.weight", "b", "a", "0.bias"]
    io.save({k: np.full(2, i, dtype=np.float32) for i, k in enumerate(keys)}, path)
    first = io.load(path)
    assert list(first) == keys
    for v in first.values():
        assert v.flags.writeable and v.flags.owndata and v.flags.c_contiguous
    first["a"][:] = 99
    assert io.load(path)["a"].tolist() == [3.0, 3.0]


def test_noncontiguous_and_big_endian_and_array_like(tmp_path):
    class TensorLike:  # what a deltaprop Tensor offers
        def __init__(self, data):
            self.data = data

        def __array__(self, dtype=None, copy=None):
            return self.data

    a = np.arange(6.0).reshape(2, 3).T
    b = np.arange(4, dtype=">i8")
    c = TensorLike(np.ones((2, 2), dtype=np.float32))
    path = tmp_path / "m.safetensors"
    io.save({"a": a, "b": b, "c": c, "d": np.float32(2.5)}, path)
    out = io.load(path)
    np.testing.assert_array_equal(out["a"], a)
    assert out["b"].dtype == np.int64 and out["b"].tolist() == [0, 1, 2, 3]
    assert out["c"].dtype == np.float32 and out["c"].shape == (2, 2)
    assert out["d"].shape == () and out["d"].dtype == np.float32


def test_metadata_json_roundtrip_and_storage(tmp_path):
    path = tmp_path / "m.safetensors"
    meta = {"arch": "mlp", "hidden": [16, 16], "lr": 0.1, "tiny": 1e-300, "seed": 0,
            "none": None, "ok": True, "nested": {"a": [1, 2.5, "x"]}, "np": np.float32(0.5),
            "tup": (1, 2)}
    io.save({"w": np.zeros(2)}, path, metadata=meta)
    got = io.load_metadata(path)
    expected = {**meta, "np": 0.5, "tup": [1, 2]}  # JSON rules: tuples come back as lists
    assert got == expected
    with safetensors.safe_open(str(path), framework="np") as f:
        raw = f.metadata()
    assert raw["arch"] == '"mlp"' and raw["hidden"] == "[16, 16]"  # stored JSON-encoded
    assert raw["deltaprop.format"] == "1"


def test_metadata_of_foreign_file_is_raw_strings(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"w": np.zeros(2, np.float32)}, str(path), metadata={"n": "3", "s": "plain"})
    assert io.load_metadata(path) == {"n": "3", "s": "plain"}
    assert io.load(path)["w"].dtype == np.float32  # no checksum: loads unchecked


@pytest.mark.parametrize("meta, exc, needle", [
    ({1: "x"}, TypeError, "1"),
    ({"bad": {1, 2}}, TypeError, "'bad'"),
    ({"deltaprop.format": "2"}, ValueError, "reserved"),
    (["not", "a", "dict"], TypeError, "dict"),
])
def test_bad_metadata(tmp_path, meta, exc, needle):
    with pytest.raises(exc, match=needle):
        io.save({"w": np.zeros(2)}, tmp_path / "m.safetensors", metadata=meta)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sd, exc, needle", [
    ({1: np.zeros(2)}, TypeError, "1"),
    ({"names": np.array(["a", "b"])}, TypeError, "'names'.*non-numeric"),
    ({"obj": np.array([object()])}, TypeError, "'obj'.*non-numeric"),
    ({"z": np.zeros(2, dtype=np.complex128)}, TypeError, "'z'.*complex128"),
    ({"lst": [1.0, 2.0]}, TypeError, "'lst'.*np.asarray"),
    ({"__metadata__": np.zeros(2)}, ValueError, "reserved"),
])
def test_bad_state_dict(tmp_path, sd, exc, needle):
    with pytest.raises(exc, match=needle):
        io.save(sd, tmp_path / "m.safetensors")
    assert not list(tmp_path.iterdir())


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError):
        io.load(missing)
    with pytest.raises(FileNotFoundError):
        io.load_metadata(missing)
    with pytest.raises(FileNotFoundError):
        io.load_checkpoint(missing, FakeModule(SHAPES))


def _valid_bytes(tmp_path) -> bytes:
    path = tmp_path / "valid.safetensors"
    io.save({"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3, np.int64)},
            path, metadata={"arch": "mlp"})
    return path.read_bytes()


class _Evil:
    def __reduce__(self):
        return (os.mkdir, ("PWNED_BY_PICKLE",))


FOREIGN = {
    "empty": b"",
    "random": np.random.default_rng(1).bytes(256),
    "pickle": pickle.dumps({"w": [1.0, 2.0]}),
    "evil_pickle": pickle.dumps(_Evil()),
    "png": b"\x89PNG\r\n\x1a\n" + bytes(64),
    "text": b"hello, this is not a model\n",
    "npz": b"PK\x03\x04" + bytes(40),
    "header_len_past_end": (100).to_bytes(8, "little") + b"{}      ",
    "header_not_object": (8).to_bytes(8, "little") + b"[1,2,3] ",
    "header_not_json": (8).to_bytes(8, "little") + b"notjson!",
}


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_foreign_files_raise_value_error_naming_file(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(FOREIGN[name])
    for fn in (io.load, io.load_metadata, lambda p: io.load_checkpoint(p, FakeModule(SHAPES))):
        with pytest.raises(ValueError, match="not a valid safetensors file") as info:
            fn(path)
        assert str(path) in str(info.value)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_truncated_and_extended_files(tmp_path):
    data = _valid_bytes(tmp_path)
    path = tmp_path / "t.safetensors"
    for cut in [0, 1, 7, 8, 9, 40, len(data) // 2, len(data) - 1]:
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a valid safetensors file"):
            io.load(path)
    path.write_bytes(data + b"\x00\x00")
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        io.load(path)


def test_corrupted_tensor_data_is_detected(tmp_path):
    data = bytearray(_valid_bytes(tmp_path))
    data[-1] ^= 0x01  # the last byte is tensor data
    path = tmp_path / "c.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted") as info:
        io.load(path)
    assert str(path) in str(info.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_every_truncation_is_rejected(tmp_path, cut):
    data = _valid_bytes(tmp_path)
    path = tmp_path / "t.safetensors"
    path.write_bytes(data[: cut % len(data)])
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")):
        io.load(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0, max_value=10_000), mask=st.integers(min_value=1, max_value=255))
def test_any_single_byte_flip_is_rejected_or_harmless(tmp_path, pos, mask):
    original = _valid_bytes(tmp_path)
    data = bytearray(original)
    data[pos % len(data)] ^= mask
    path = tmp_path / "f.safetensors"
    path.write_bytes(bytes(data))
    try:
        got = io.load(path)
        meta = io.load_metadata(path)
    except ValueError:
        return
    # accepted only if nothing observable changed (e.g. padding whitespace)
    (tmp_path / "o.safetensors").write_bytes(original)
    want = io.load(tmp_path / "o.safetensors")
    assert_tree_equal(got, want)
    assert meta == {"arch": "mlp"}


# ----------------------------------------------------------------------------- atomic writes

def _no_temp_files(directory) -> bool:
    return sorted(p.name for p in directory.iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("failure", ["write", "fsync", "replace"])
def test_crash_mid_save_leaves_old_file_intact(tmp_path, monkeypatch, failure):
    path = tmp_path / "m.safetensors"
    io.save({"w": np.arange(4, dtype=np.float32)}, path, metadata={"v": 1})
    old = path.read_bytes()

    if failure == "write":
        def half_then_crash(f, data):
            f.write(data[: len(data) // 2])
            raise RuntimeError("simulated crash mid-write")
        monkeypatch.setattr(io, "_write_all", half_then_crash)
    elif failure == "fsync":
        def bad_fsync(fd):
            raise OSError("simulated disk failure")
        monkeypatch.setattr(io.os, "fsync", bad_fsync)
    else:
        def bad_replace(src, dst):
            raise OSError("simulated rename failure")
        monkeypatch.setattr(io.os, "replace", bad_replace)

    big = {"w": np.ones((256, 256), dtype=np.float64)}
    with pytest.raises((RuntimeError, OSError), match="simulated"):
        io.save(big, path, metadata={"v": 2})
    assert path.read_bytes() == old
    assert _no_temp_files(tmp_path)
    monkeypatch.undo()
    assert io.load_metadata(path) == {"v": 1}
    io.save(big, path, metadata={"v": 2})  # and a later save works
    assert io.load(path)["w"].shape == (256, 256) and _no_temp_files(tmp_path)


def test_save_file_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        io.save({"w": np.zeros(1)}, tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.safetensors").stat().st_mode) == 0o644


def test_save_into_missing_directory_or_onto_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        io.save({"w": np.zeros(1)}, tmp_path / "no" / "m.safetensors")
    with pytest.raises(IsADirectoryError):
        io.save({"w": np.zeros(1)}, tmp_path)


# ----------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("step_as_array", [True, False])
def test_checkpoint_roundtrip_exact(tmp_path, step_as_array):
    model, opt = trained(step_as_array=step_as_array, betas=(0.8, 0.99))
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt, epoch=7, metadata={"hidden": [4], "dataset": "xor"})

    model2 = FakeModule(SHAPES, seed=99)
    opt2 = FakeAdam(model2.parameters(), lr=0.5, step_as_array=step_as_array)
    assert io.load_checkpoint(path, model2, opt2) == 7
    assert_tree_equal(model2.state_dict(), model.state_dict())
    assert_tree_equal(opt2.state_dict(), opt.state_dict())  # step type, dtypes, int keys, betas tuple
    assert opt2.state_dict()["param_groups"][0]["betas"] == (0.8, 0.99)
    assert opt2.state_dict()["param_groups"][0]["foreach"] is None
    assert io.load_metadata(path) == {"hidden": [4], "dataset": "xor"}


def test_checkpoint_layout(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt, epoch=3)
    names = set(io.load(path))
    assert {"model.0.weight", "model.2.bias", "optimizer.state.0.exp_avg",
            "optimizer.state.3.exp_avg_sq", "optimizer.state.0.step"} <= names
    ck = io.read_checkpoint(path)
    assert ck.epoch == 3 and ck.optimizer_class == "FakeAdam" and list(ck.model_state) == list(SHAPES)
    with safetensors.safe_open(str(path), framework="np") as f:
        record = json.loads(f.metadata()["deltaprop.checkpoint"])
    assert record["epoch"] == 3 and record["optimizer"]["param_groups"][0]["lr"] == 0.01


def test_scalar_and_exotic_state_entries_roundtrip(tmp_path):
    model = FakeModule(SHAPES)
    opt = FakeAdam(model.parameters(), lr=0.1)
    opt.state = {0: {"step": 5, "f": 0.1, "np32": np.float32(1.5), "none": None, "flag": True,
                     "buf": np.arange(12, dtype=np.float32).reshape(4, 3), "nan": float("nan"),
                     "tup": (1, (2.0, None)), "d": {1: "one", "__tensor__": "tricky"}}}
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt)
    opt2 = FakeAdam(FakeModule(SHAPES).parameters())
    assert io.load_checkpoint(path, FakeModule(SHAPES), opt2) == 0
    assert_tree_equal(opt2.state_dict()["state"], opt.state)


def test_checkpoint_resume_equals_straight_run(tmp_path):
    straight, opt = trained(steps=0)
    for s in range(4):
        opt.step(grads_for(straight, s))

    first, opt_a = trained(steps=0)
    for s in range(2):
        opt_a.step(grads_for(first, s))
    io.save_checkpoint(tmp_path / "c.safetensors", first, opt_a, epoch=2)
    resumed = FakeModule(SHAPES, seed=5)
    opt_b = FakeAdam(resumed.parameters(), lr=0.01)
    start = io.load_checkpoint(tmp_path / "c.safetensors", resumed, opt_b)
    for s in range(start, 4):
        opt_b.step(grads_for(resumed, s))
    assert_tree_equal(resumed.state_dict(), straight.state_dict())


def _snapshot(model, opt):
    return copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())


def test_architecture_mismatch_names_key_and_shapes(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt, epoch=1)
    other = FakeModule({**SHAPES, "0.weight": (5, 3)}, seed=3)
    other_opt = FakeAdam(other.parameters())
    before = _snapshot(other, other_opt)
    with pytest.raises(ValueError, match=r"'0\.weight'.*\(4, 3\).*\(5, 3\)"):
        io.load_checkpoint(path, other, other_opt)
    assert_tree_equal(_snapshot(other, other_opt), before)


def test_missing_and_unexpected_keys(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt)
    shapes = {k: v for k, v in SHAPES.items() if k != "2.bias"} | {"extra": (1,)}
    other = FakeModule(shapes)
    before = other.state_dict()
    with pytest.raises(ValueError, match=r"missing keys \['extra'\].*unexpected keys \['2\.bias'\]"):
        io.load_checkpoint(path, other)
    assert_tree_equal(other.state_dict(), before)


def test_checkpoint_without_optimizer_state(tmp_path):
    model, _ = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, epoch=4)
    target = FakeModule(SHAPES, seed=8)
    opt = FakeAdam(target.parameters())
    before = _snapshot(target, opt)
    with pytest.raises(ValueError, match="no optimizer state"):
        io.load_checkpoint(path, target, opt)
    assert_tree_equal(_snapshot(target, opt), before)
    assert io.load_checkpoint(path, target) == 4  # model only is fine
    assert_tree_equal(target.state_dict(), model.state_dict())


def test_optimizer_state_ignored_when_no_optimizer_passed(tmp_path):
    model, opt = trained()
    io.save_checkpoint(tmp_path / "c.safetensors", model, opt, epoch=2)
    target = FakeModule(SHAPES, seed=8)
    assert io.load_checkpoint(tmp_path / "c.safetensors", target) == 2
    assert_tree_equal(target.state_dict(), model.state_dict())


@pytest.mark.parametrize("make_opt, needle", [
    (lambda m: FakeAdam(m.parameters(), groups=2), "2"),
    (lambda m: FakeAdam(m.parameters()[:3]), "3"),
    (lambda m: FakeSGD(m.parameters()), "FakeSGD"),
])
def test_optimizer_structure_mismatch_changes_nothing(tmp_path, make_opt, needle):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt)
    target = FakeModule(SHAPES, seed=4)
    target_opt = make_opt(target)
    before = _snapshot(target, target_opt)
    with pytest.raises(ValueError, match=needle):
        io.load_checkpoint(path, target, target_opt)
    assert_tree_equal(_snapshot(target, target_opt), before)


def test_optimizer_state_shape_must_fit_parameters(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    opt.state[0]["exp_avg"] = np.zeros((7, 7), np.float32)
    io.save_checkpoint(path, model, opt)
    target = FakeModule(SHAPES, seed=4)
    target_opt = FakeAdam(target.parameters())
    before = _snapshot(target, target_opt)
    with pytest.raises(ValueError, match=r"'exp_avg'.*\(7, 7\).*\(4, 3\)"):
        io.load_checkpoint(path, target, target_opt)
    assert_tree_equal(_snapshot(target, target_opt), before)


def test_optimizer_load_failure_rolls_back_model(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt)

    class Exploding(FakeAdam):
        def load_state_dict(self, sd):
            raise RuntimeError("boom")

    target = FakeModule(SHAPES, seed=4)
    before = target.state_dict()
    with pytest.raises(RuntimeError, match="boom"):
        io.load_checkpoint(path, target, Exploding(target.parameters()))
    assert_tree_equal(target.state_dict(), before)


def test_plain_model_file_is_not_a_checkpoint(tmp_path):
    model, _ = trained()
    path = tmp_path / "m.safetensors"
    io.save(model.state_dict(), path)
    with pytest.raises(ValueError, match="not a deltaprop checkpoint"):
        io.load_checkpoint(path, FakeModule(SHAPES))


def test_checkpoint_argument_errors(tmp_path):
    model, opt = trained()
    with pytest.raises(TypeError, match="epoch"):
        io.save_checkpoint(tmp_path / "c.safetensors", model, opt, epoch=1.5)
    with pytest.raises(ValueError, match="reserved"):
        io.save_checkpoint(tmp_path / "c.safetensors", model, opt, metadata={"deltaprop.checkpoint": 1})
    opt.state[0]["weird"] = object()
    with pytest.raises(TypeError, match="optimizer.state.0.weird"):
        io.save_checkpoint(tmp_path / "c.safetensors", model, opt)
    assert not list(tmp_path.iterdir())


def test_corrupted_checkpoint_changes_nothing(tmp_path):
    model, opt = trained()
    path = tmp_path / "ckpt.safetensors"
    io.save_checkpoint(path, model, opt)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    target = FakeModule(SHAPES, seed=4)
    target_opt = FakeAdam(target.parameters())
    before = _snapshot(target, target_opt)
    with pytest.raises(ValueError, match="corrupted"):
        io.load_checkpoint(path, target, target_opt)
    assert_tree_equal(_snapshot(target, target_opt), before)


# ----------------------------------------------------------------------------- the real classes

def _real_nn_optim():
    nn = pytest.importorskip("deltaprop.nn")
    optim = pytest.importorskip("deltaprop.optim")
    if not hasattr(nn, "Linear") or not hasattr(optim, "Adam"):
        pytest.skip("deltaprop.nn.Linear / deltaprop.optim.Adam not written yet")
    return nn, optim


def test_real_linear_adam_checkpoint(tmp_path):
    nn, optim = _real_nn_optim()
    import deltaprop as dp

    dp.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x = dp.tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))

    def train_step(m, o):
        o.zero_grad()
        loss = (m(x) ** 2).sum()
        loss.backward()
        o.step()

    train_step(model, opt)
    path = tmp_path / "ckpt.safetensors"
    dp_save_checkpoint = getattr(dp, "save_checkpoint", io.save_checkpoint)
    dp_save_checkpoint(path, model, opt, epoch=1, metadata={"arch": [3, 2]})

    dp.manual_seed(1)
    model2 = nn.Linear(3, 2)
    opt2 = optim.Adam(model2.parameters(), lr=1e-2)
    assert io.load_checkpoint(path, model2, opt2) == 1
    assert_tree_equal(model2.state_dict(), model.state_dict())
    assert opt2.state_dict()["param_groups"][0]["betas"] == opt.state_dict()["param_groups"][0]["betas"]
    train_step(model, opt)
    train_step(model2, opt2)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(model2.state_dict()[k], v)

    wrong = nn.Linear(3, 4)
    before = wrong.state_dict()
    with pytest.raises(ValueError, match=r"'weight'.*\(2, 3\).*\(4, 3\)"):
        io.load_checkpoint(path, wrong, optim.Adam(wrong.parameters()))
    assert_tree_equal(wrong.state_dict(), before)
