"""dp.gradcheck (True on correct ops, GradcheckError naming input, index and both values on a
wrong one) and dp.detect_anomaly (FloatingPointError naming the op and the shapes)."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import deltaprop as dp

F = dp.nn.functional


def t64(x, requires_grad=True):
    return dp.tensor(np.asarray(x, np.float64), requires_grad=requires_grad)


# -- gradcheck --------------------------------------------------------------------------------
def test_gradcheck_true_on_correct_ops():
    rng = np.random.default_rng(0)
    a, b = t64(rng.normal(size=(2, 3))), t64(rng.normal(size=(3,)))
    assert dp.gradcheck(lambda x, y: (x * y).tanh() @ y, a, b) is True
    assert dp.gradcheck(lambda x: F.log_softmax(x, axis=0), a) is True
    assert dp.gradcheck(lambda x: x.exp().sum(), a) is True


def test_gradcheck_accepts_float32_and_plain_arrays():
    x = dp.tensor([0.3, 0.7], requires_grad=True)  # float32: gradcheck works in float64
    assert dp.gradcheck(lambda v: dp.sin(v) * v, x) is True
    assert dp.gradcheck(lambda v: v * v, np.array([1.0, 2.0])) is True


def test_gradcheck_checks_only_marked_inputs():
    w = t64([1.0, 2.0], requires_grad=False)
    x = t64([0.5, -0.5])
    assert dp.gradcheck(lambda v, c: (v * c).exp(), x, w) is True


class WrongSquare(dp.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g  # wrong: should be 2 x g


class WrongSecondInput(dp.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        gb = g * a
        return g * b, gb + (gb * 0 + 1) * (np.arange(gb.size).reshape(gb.shape) == 2)  # wrong at index 2


def _numbers(msg):
    return [float(m) for m in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", msg)]


def test_gradcheck_raises_on_wrong_function_naming_input_index_and_values():
    x = t64([1.0, 2.0, 4.0])
    with pytest.raises(dp.GradcheckError) as e:
        dp.gradcheck(lambda v: WrongSquare.apply(v), x)
    assert isinstance(e.value, RuntimeError)
    msg = str(e.value)
    assert "input 0" in msg
    # the worst disagreement is at x = 4: analytical 12 vs numerical 8
    assert "(2,)" in msg, msg
    nums = _numbers(msg)
    assert any(abs(n - 12.0) < 1e-6 for n in nums), msg
    assert any(abs(n - 8.0) < 1e-4 for n in nums), msg


def test_gradcheck_names_the_second_input_and_a_multi_dim_index():
    a = t64(np.ones((2, 2)))
    b = t64(np.arange(4.0).reshape(2, 2) + 1)
    with pytest.raises(dp.GradcheckError) as e:
        dp.gradcheck(lambda x, y: WrongSecondInput.apply(x, y), a, b)
    msg = str(e.value)
    assert "input 1" in msg, msg
    assert "(1, 0)" in msg, msg  # flat index 2 of a (2, 2) input
    nums = _numbers(msg)
    # every output element's VJP adds a spurious 1 at b[1, 0]; for output element 0 the true value is 0
    assert any(abs(n - 1.0) < 1e-6 for n in nums), msg  # analytical
    assert any(abs(n) < 1e-4 for n in nums), msg  # numerical


def test_gradcheck_error_is_runtime_error_subclass():
    assert issubclass(dp.GradcheckError, RuntimeError)
    with pytest.raises(RuntimeError):
        dp.gradcheck(lambda v: WrongSquare.apply(v), t64([1.0]))


def test_gradcheck_tolerances_are_parameters():
    class SlightlyWrong(dp.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2.01

    x = t64([1.0, 2.0])
    with pytest.raises(dp.GradcheckError):
        dp.gradcheck(lambda v: SlightlyWrong.apply(v), x)
    assert dp.gradcheck(lambda v: SlightlyWrong.apply(v), x, rtol=1e-2) is True


# -- detect_anomaly -------------------------------------------------------------------------------
def test_anomaly_nan_in_forward_names_op_and_shapes():
    x = t64([[1.0, -1.0, 2.0], [1.0, 1.0, 1.0]])
    with pytest.raises(FloatingPointError) as e:
        with dp.detect_anomaly():
            dp.log(x)
    msg = str(e.value)
    assert "log" in msg and "(2, 3)" in msg, msg


def test_anomaly_nan_in_forward_of_sqrt_and_binary_op():
    with pytest.raises(FloatingPointError, match="sqrt"):
        with dp.detect_anomaly():
            dp.sqrt(t64([-1.0, 4.0]))
    a, b = t64([0.0, 1.0]), t64([[0.0, 1.0]] * 3)
    with pytest.raises(FloatingPointError) as e:
        with dp.detect_anomaly():
            a / b  # 0/0
    msg = str(e.value)
    assert "div" in msg and "(2,)" in msg and "(3, 2)" in msg, msg


def test_anomaly_inf_in_gradient_of_sqrt_at_zero():
    x = t64([0.0, 4.0])
    y = dp.sqrt(x).sum()
    with pytest.raises(FloatingPointError) as e:
        with dp.detect_anomaly():
            y.backward()
    msg = str(e.value)
    assert "sqrt" in msg and "Inf" in msg and "(2,)" in msg, msg


def test_anomaly_nan_in_backward():
    class NaNGrad(dp.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return dp.tensor(np.full(g.shape, np.nan))  # no deltaprop op runs here

    x = t64([1.0, 2.0, 3.0])
    with dp.detect_anomaly():
        y = NaNGrad.apply(x).sum()  # the forward is fine
        with pytest.raises(FloatingPointError) as e:
            y.backward()
    msg = str(e.value)
    assert "NaNGrad" in msg and "NaN" in msg and "(3,)" in msg, msg


def test_anomaly_nan_in_backward_of_builtin_op():
    # forward finite; backward of sqrt at 0 times an upstream 0 gives 0 * inf = NaN
    x = t64([0.0, 1.0])
    with dp.detect_anomaly():
        y = (dp.sqrt(x) * dp.tensor(np.array([0.0, 1.0]))).sum()
        with pytest.raises(FloatingPointError) as e:
            y.backward()
    assert "sqrt" in str(e.value)


def test_anomaly_mode_is_restored_and_silent_when_clean():
    x = t64([1.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dp.detect_anomaly():
            (dp.log(x) * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.log([1.0, 2.0]) + 1)
    # outside the context a NaN passes silently (as NumPy), no FloatingPointError
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = dp.log(t64([-1.0]))
    assert np.isnan(y.item())
    with pytest.raises(FloatingPointError):
        with dp.detect_anomaly():
            dp.log(t64([-1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dp.log(t64([-1.0]))  # mode restored after the exception


def test_anomaly_inf_in_forward_is_allowed():
    # DESIGN: NaN in forward, Inf only in a gradient
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with dp.detect_anomaly():
            y = dp.exp(t64([1000.0]))
    assert y.item() == np.inf


def test_anomaly_nan_made_by_ops_inside_a_function_backward():
    class NaNByOp(dp.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            return g * np.nan

    x = t64([1.0, 2.0, 3.0])
    with dp.detect_anomaly():
        y = NaNByOp.apply(x).sum()
        with pytest.raises(FloatingPointError) as e:
            y.backward()
    assert "(3,)" in str(e.value)
    assert "NaNByOp" in str(e.value)  # the Function whose backward failed is named
