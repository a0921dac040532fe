"""Half-precision safetensors files (issue #22): PyTorch's bfloat16 loads as float32, exactly, with a
warning naming it; float16 stays float16; a dtype deltaprop cannot read is refused naming it; every
error about a file names its dtypes."""
from __future__ import annotations

import json
import re
import struct
import warnings

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.io import DtypeWidenedWarning


def raw_file(path, tensors: dict[str, tuple[str, list[int], bytes]]) -> str:
    """A safetensors file written by hand (no torch): {name: (dtype code, shape, little-endian bytes)}."""
    header, offset, blob = {}, 0, b""
    for name, (code, shape, data) in tensors.items():
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blob += data
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + blob)
    return str(path)


def test_bfloat16_by_hand_is_widened_exactly(tmp_path):
    # bfloat16 bit patterns: 1.0, -2.5, the largest finite (3.3895314e38), the smallest subnormal, inf
    bits = np.array([0x3F80, 0xC020, 0x7F7F, 0x0001, 0x7F80], dtype="<u2")
    p = raw_file(tmp_path / "h.safetensors", {"w": ("BF16", [5], bits.tobytes()),
                                              "b": ("F32", [1], np.float32([7]).tobytes())})
    with pytest.warns(DtypeWidenedWarning) as rec:
        sd = dp.load(p)
    assert len(rec) == 1
    assert str(rec[0].message) == (f"{p!r}: tensor(s) 'w' stored as bfloat16 were read as float32 (exactly; NumPy "
                                   "has no bfloat16)")
    want = (bits.astype(np.uint32) << 16).view(np.float32)
    assert sd["w"].dtype == np.float32 and sd["w"].flags.writeable
    np.testing.assert_array_equal(sd["w"], want)
    assert sd["w"][:2].tolist() == [1.0, -2.5] and np.isinf(sd["w"][4])
    assert sd["b"].dtype == np.float32 and sd["b"].tolist() == [7.0]


def test_unreadable_dtype_is_named(tmp_path):
    p = raw_file(tmp_path / "f8.safetensors", {"q": ("F8_E4M3", [2], b"\x38\x40")})
    with pytest.raises(ValueError) as e:
        dp.load(p)
    assert str(e.value) == (
        f"{p!r}: tensor 'q' has dtype float8_e4m3fn (F8_E4M3), which deltaprop cannot read (it reads bool, int8, "
        "uint8, int16, uint16, int32, uint32, int64, uint64, float16, float32, float64, complex64, bfloat16); "
        "convert it where it was made, e.g. tensor.float() in PyTorch")


def test_errors_about_a_file_name_its_dtypes(tmp_path):
    bits = np.array([0x3F80, 0x4000], dtype="<u2").tobytes()
    p = raw_file(tmp_path / "t.safetensors", {"w": ("BF16", [2], bits), "b": ("F32", [1], b"\0\0\0\0")})
    data = open(p, "rb").read()
    (tmp_path / "t.safetensors").write_bytes(data[:-3])  # truncated: the header is whole, the data not
    with pytest.raises(ValueError) as e:
        dp.load(p)
    assert str(e.value).startswith(f"{p!r} (tensors of dtype bfloat16, float32) is not a valid safetensors file (")
    q = str(tmp_path / "d.safetensors")
    dp.save({"w": np.ones(4, np.float16)}, q)
    raw = bytearray(open(q, "rb").read())
    raw[-1] ^= 0x10  # flip a bit of the tensor data: the checksum says so
    open(q, "wb").write(bytes(raw))
    with pytest.raises(ValueError) as e:
        dp.load(q)
    assert str(e.value).startswith(f"{q!r} (tensors of dtype float16) is corrupted: its tensor data does not match")


def test_shape_mismatch_names_both_dtypes(tmp_path):
    model = dp.nn.Linear(3, 2)
    p = str(tmp_path / "c.safetensors")
    dp.save_checkpoint(p, dp.nn.Linear(4, 2, dtype=np.float64))
    with pytest.raises(ValueError) as e:
        dp.load_checkpoint(p, model)
    assert str(e.value) == (
        f"{p!r} does not match the model: 'weight' has shape (2, 4) (float64) in the file but (2, 3) (float32) in "
        "the model; it was saved from a different architecture, so build the model it was saved from (see "
        "deltaprop.load_metadata(path))")


def test_load_state_dict_shape_mismatch_names_the_dtypes():
    lin = dp.nn.Linear(3, 2)
    with pytest.raises(dp.nn.StateDictError) as e:
        lin.load_state_dict({"weight": np.ones((2, 4), np.float16), "bias": np.ones(2, np.float32)})
    assert str(e.value) == ("Error(s) in loading state_dict for Linear: weight: shape (2, 4) in the state_dict but "
                            "(2, 3) in the model (dtype float16 in the state_dict, float32 here)")


# ----------------------------------------------------------------------------- files PyTorch wrote

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")


def test_pytorch_bfloat16_file_loads_as_float32(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, generator=g).to(torch.bfloat16)
    b = torch.randn(3, generator=g).to(torch.bfloat16)
    steps = torch.tensor([5], dtype=torch.int64)
    p = str(tmp_path / "bf16.safetensors")
    st_torch.save_file({"weight": w, "bias": b, "steps": steps}, p)
    with pytest.warns(DtypeWidenedWarning, match=re.escape("tensor(s) 'bias', 'weight' stored as bfloat16")):
        sd = dp.load(p)
    assert {k: v.dtype for k, v in sd.items()} == {"bias": np.float32, "weight": np.float32, "steps": np.int64}
    np.testing.assert_array_equal(sd["weight"], w.float().numpy())  # exact: bfloat16 -> float32 loses nothing
    np.testing.assert_array_equal(sd["bias"], b.float().numpy())
    assert sd["steps"].tolist() == [5]
    # ... and into a model, whose float32 parameters then equal PyTorch's widened values
    lin = dp.nn.Linear(4, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DtypeWidenedWarning)
        sd = dp.load(p)
    del sd["steps"]
    lin.load_state_dict(sd)
    np.testing.assert_array_equal(lin.weight.numpy(), w.float().numpy())
    ref = torch.nn.functional.linear(torch.ones(2, 4), w.float(), b.float()).numpy()
    np.testing.assert_allclose(lin(dp.ones(2, 4)).numpy(), ref, rtol=1e-6)


def test_pytorch_float16_file_stays_float16(tmp_path):
    w = torch.tensor([[0.1, -65504.0], [6e-8, 1.0]], dtype=torch.float16)
    p = str(tmp_path / "f16.safetensors")
    st_torch.save_file({"w": w}, p)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: NumPy has float16
        sd = dp.load(p)
    assert sd["w"].dtype == np.float16
    np.testing.assert_array_equal(sd["w"], w.numpy())


def test_pytorch_float8_file_is_refused_naming_the_dtype(tmp_path):
    if not hasattr(torch, "float8_e5m2"):
        pytest.skip("this PyTorch has no float8")
    p = str(tmp_path / "f8.safetensors")
    st_torch.save_file({"w": torch.zeros(2).to(torch.float8_e5m2)}, p)
    with pytest.raises(ValueError, match=re.escape("tensor 'w' has dtype float8_e5m2 (F8_E5M2), which deltaprop "
                                                   "cannot read")):
        dp.load(p)
