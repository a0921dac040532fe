"""Errors a user can act on: types per DESIGN.md, and messages naming the op and both shapes."""
from __future__ import annotations

import re

import numpy as np
import pytest

import deltaprop as dp

F = dp.nn.functional


def names_shapes(msg, *shapes):
    return all(str(s) in msg for s in shapes)


def test_matmul_shape_mismatch():
    a, b = dp.ones(2, 3), dp.ones(4, 5)
    with pytest.raises(ValueError) as e:
        a @ b
    msg = str(e.value)
    assert "matmul" in msg
    assert "(2, 3)" in msg and "(4, 5)" in msg
    with pytest.raises(ValueError, match=r"matmul"):
        dp.matmul(dp.ones(2, 3), dp.ones(2))
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        dp.ones(2, 2, 3) @ dp.ones(3, 2, 2)  # batch dims 2 and 3 do not broadcast


@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"), (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div"), (lambda a, b: dp.maximum(a, b), "maximum"),
    (lambda a, b: dp.minimum(a, b), "minimum"), (lambda a, b: a ** b, "pow"),
])
def test_broadcast_mismatch_names_op_and_shapes(op, name):
    with pytest.raises(ValueError) as e:
        op(dp.ones(2, 3), dp.ones(4, 5))
    msg = str(e.value)
    assert name in msg, msg
    assert "(2, 3)" in msg and "(4, 5)" in msg, msg


def test_broadcast_mismatch_with_requires_grad_and_ndarray():
    x = dp.ones(2, 3, requires_grad=True)
    with pytest.raises(ValueError, match=re.escape("(4, 5)")):
        x + np.ones((4, 5))
    with pytest.raises(ValueError, match=re.escape("(2, 3)")):
        np.ones((4, 5)) + x


def test_where_broadcast_mismatch():
    with pytest.raises(ValueError) as e:
        dp.where(np.ones((2, 3), bool), dp.ones(2, 3), dp.ones(4, 5))
    msg = str(e.value)
    assert "where" in msg and "(2, 3)" in msg and "(4, 5)" in msg, msg


def test_reshape_mismatch():
    with pytest.raises(ValueError) as e:
        dp.ones(2, 3).reshape(4, 5)
    msg = str(e.value)
    assert "reshape" in msg and "(2, 3)" in msg and "(4, 5)" in msg, msg
    with pytest.raises(ValueError, match="reshape"):
        dp.reshape(dp.ones(2, 3), (4, 5))


def test_concatenate_mismatch():
    with pytest.raises(ValueError) as e:
        dp.concatenate([dp.ones(2, 3), dp.ones(4, 5)])
    msg = str(e.value)
    assert "concatenate" in msg and "(2, 3)" in msg and "(4, 5)" in msg, msg


def test_other_shape_errors_are_value_errors_naming_the_op():
    with pytest.raises(ValueError, match="stack"):
        dp.stack([dp.ones(2, 3), dp.ones(4, 5)])
    with pytest.raises(ValueError, match="broadcast_to"):
        dp.broadcast_to(dp.ones(2, 3), (4, 5))
    with pytest.raises(ValueError, match="mse_loss"):
        F.mse_loss(dp.ones(2, 3), dp.ones(4, 5))
    with pytest.raises(ValueError, match="binary_cross_entropy"):
        F.binary_cross_entropy(dp.ones(2, 3) * 0.5, dp.ones(4, 5))


def test_cross_entropy_label_errors():
    logits = dp.zeros(3, 4)
    with pytest.raises(ValueError, match="out of range"):
        F.cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError):
        F.cross_entropy(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError):
        F.cross_entropy(logits, np.array([0, 1]))  # wrong length
    with pytest.raises(ValueError):
        F.cross_entropy(logits, np.array([0, 1, 1]), reduction="avg")


def test_backward_on_non_scalar_without_gradient_says_to_pass_one():
    x = dp.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError) as e:
        y.backward()
    msg = str(e.value)
    assert "gradient" in msg and "(3,)" in msg, msg
    assert "scalar" in msg


def test_backward_with_wrong_gradient_shape():
    x = dp.ones(3, requires_grad=True)
    with pytest.raises((ValueError, RuntimeError), match=r"\(3,\)"):
        (x * 2).backward(gradient=np.ones(4))


def test_backward_on_tensor_without_grad_says_so():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dp.ones(3).sum().backward()
    x = dp.ones(3, requires_grad=True)
    with dp.no_grad():
        y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_requires_grad_on_integer_tensor_is_type_error_naming_type():
    with pytest.raises(TypeError, match="int64"):
        dp.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="int"):
        dp.tensor([1, 2, 3]).requires_grad_()
    with pytest.raises(TypeError, match="bool"):
        dp.tensor([True, False], requires_grad=True)
    with pytest.raises(TypeError):
        dp.arange(3, requires_grad=True)


@pytest.mark.parametrize("data, tname", [("abc", "str"), (None, "NoneType"), ({"a": 1}, "dict"),
                                         (object(), "object"), (["a", "b"], "list"), (1 + 2j, "complex")])
def test_non_numeric_data_is_type_error_naming_type(data, tname):
    with pytest.raises(TypeError) as e:
        dp.tensor(data)
    assert tname in str(e.value), str(e.value)


def test_ragged_list_is_type_error():
    with pytest.raises(TypeError):
        dp.tensor([[1.0, 2.0], [3.0]])


def test_in_place_misuse_is_runtime_error():
    w = dp.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w += 1
    with pytest.raises(RuntimeError, match="does not require grad"):
        dp.ones(2).register_hook(lambda g: g)


def test_second_backward_error_is_runtime_error_saying_so():
    x = dp.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError) as e:
        y.backward()
    msg = str(e.value).lower()
    assert "second time" in msg or "freed" in msg
    assert "retain_graph=true" in msg


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint64])
def test_cross_entropy_labels_of_any_integer_dtype(dtype):
    x = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]])
    labels = np.array([2, 0], dtype)
    expect = np.mean(np.log(np.exp(x).sum(1)) - x[[0, 1], [2, 0]])
    np.testing.assert_allclose(F.cross_entropy(dp.tensor(x), labels).item(), expect, rtol=1e-14)
    with pytest.raises(ValueError, match=r"label 3 is out of range for 3 classes \(valid: 0..2\)"):
        F.cross_entropy(dp.tensor(x), np.array([3, 0], dtype))
    if np.issubdtype(dtype, np.signedinteger):  # negative labels never wrap around to the last class
        with pytest.raises(ValueError, match=r"label -1 is out of range for 3 classes"):
            F.cross_entropy(dp.tensor(x), np.array([0, -1], dtype))
