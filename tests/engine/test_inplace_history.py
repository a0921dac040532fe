"""In-place edits of non-leaf tensors (#19): each op sends its gradient to the node it read when it
ran (PyTorch rebases grad_fn), forward mode carries tangents through in-place ops and setitem, and
integer inputs (labels, indices) are version-checked. PyTorch is the oracle."""
import numpy as np
import pytest

import deltaprop as dp

F = dp.nn.functional
torch = pytest.importorskip("torch")


def _both(build):
    """Run build(T, lib) with deltaprop and torch leaves; return (dp grad or error, torch grad or error)."""
    out = []
    for lib in ("dp", "torch"):
        if lib == "dp":
            def T(v):
                return dp.tensor(np.asarray(v, np.float64), requires_grad=True)
        else:
            def T(v):
                return torch.tensor(np.asarray(v, np.float64), requires_grad=True)
        try:
            leaves = build(T, lib)
            out.append([np.asarray(x.grad.detach() if lib == "torch" else x.grad) for x in leaves])
        except RuntimeError as e:
            out.append(RuntimeError(str(e)))
    return out


def _mul_then_imul(T, lib):
    x = T([1., 2., 3.])
    h = x * 1.0
    y = h * 2.0
    h *= x
    (y * 3.0).sum().backward()
    return [x]


def _setitem_after_use(T, lib):
    x = T([1., 2., 3.])
    h = x * 1.0
    y = h * 2.0
    h[0] = x[1] * 5
    (y * 3.0).sum().backward()
    return [x]


def _iadd_both_used(T, lib):
    x = T([1., 2., 3.])
    h = x * 1.0
    y = h * 2.0
    h += 1
    (y.sum() + h.sum()).backward()
    return [x]


def _chain_of_edits(T, lib):
    x, w = T([0.5, -1., 2.]), T([1.5, 2., -0.5])
    h = x.tanh()
    a = h + w
    h *= w
    b = h.sum() * 2
    h -= x * x
    c = (h * 1.5).sum()
    (a.sum() + b + c).backward()
    return [x, w]


def _setitem_value_used_later(T, lib):
    x = T([1., 2., 3., 4.])
    buf = x * 0.0
    buf[1:3] = x[:2] * x[2:]
    first = buf[:2] * 3
    buf[0] = buf[3] * 2
    (first.sum() + (buf * buf).sum()).backward()
    return [x]


def _saved_then_edited(T, lib):
    x = T([1., 2., 3.])
    h = x * 1.0
    y = (h * h).sum()
    h += 1
    y.backward()
    return [x]


@pytest.mark.parametrize("build", [_saved_then_edited, _mul_then_imul, _setitem_after_use, _iadd_both_used, _chain_of_edits,
                                   _setitem_value_used_later, "_retain_then_imul", "_view_of_changed_base",
                                   "_view_used_before_and_after", "_preallocated_outputs"])
def test_in_place_edit_of_non_leaf_gives_pytorchs_gradient_or_its_error(build):
    """Also views read after their base changed and retained grads: they follow the edit as in PyTorch."""
    ours, theirs = _both(globals()[build] if isinstance(build, str) else build)  # (those are defined below)
    if isinstance(theirs, Exception):  # PyTorch refuses (a saved value was changed): so do we
        assert isinstance(ours, Exception) and "in-place" in str(ours), ours
        return
    assert not isinstance(ours, Exception), ours
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_issue_numbers():
    x = dp.tensor([1., 2., 3.], requires_grad=True)
    h = x * 1.0
    y = h * 2.0
    h *= x
    (y * 3.0).sum().backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [6, 6, 6])


def test_edit_of_a_saved_input_still_raises():
    x = dp.tensor([1., 2., 3.], requires_grad=True)
    h = x * 1.0
    y = (h * h).sum()  # mul saves h
    h += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_layer_norm_input_edited_after_forward_is_right_with_retain_graph():
    def run(edit):
        x = dp.tensor(np.arange(6.).reshape(2, 3) ** 1.5, requires_grad=True)
        h = x * 1.0
        y = F.layer_norm(h, (3,))
        if edit:
            h += 1
        (y * dp.tensor(np.arange(6.).reshape(2, 3))).sum().backward(retain_graph=True)
        return np.asarray(x.grad)
    xt = torch.tensor(np.arange(6.).reshape(2, 3) ** 1.5, requires_grad=True)
    (torch.nn.functional.layer_norm(xt * 1.0, (3,)) * torch.tensor(np.arange(6.).reshape(2, 3))).sum().backward()
    np.testing.assert_allclose(run(False), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(run(True), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_create_graph_after_in_place_edit_differentiates_what_was_read():
    # d/dx of (h*2) where h = x*x, then h edited: the second derivative must come from the old h
    x = dp.tensor([1., 2.], requires_grad=True)
    h = x * x
    y = (h * 3.0).sum()
    h *= 5.0
    (gx,) = dp.autograd.run_backward([y], [np.array(1.0)], retain_graph=True, create_graph=True, inputs=[x])
    gx.sum().backward()
    xt = torch.tensor([1., 2.], dtype=torch.float64, requires_grad=True)
    ht = xt * xt
    yt = (ht * 3.0).sum()
    ht *= 5.0
    (gt,) = torch.autograd.grad(yt, xt, create_graph=True)
    gt.sum().backward()
    np.testing.assert_allclose(np.asarray(gx.detach()), gt.detach().numpy())
    np.testing.assert_allclose(np.asarray(x.grad), xt.grad.numpy())


# -- forward mode through in-place ops ------------------------------------------------------------
def _f_iadd(v):
    h = v * 1.0
    h += v * v
    return h


def _f_imul_isub(v):
    h = v.sin()
    h *= v
    h -= 2.0 * v
    return h


def _f_setitem(v):
    h = v * 1.0
    h[1] = v[0] * v[2]
    h[0:2] = h[0:2] * 3.0
    return h


@pytest.mark.parametrize("f", [_f_iadd, _f_imul_isub, _f_setitem])
def test_jvp_through_in_place_ops_matches_torch_func(f):
    x = np.array([1., 2., 3.])
    _, t = dp.jvp(f, (x,), (np.array([1., -2., 0.5]),))
    _, tt = torch.func.jvp(f, (torch.tensor(x),), (torch.tensor([1., -2., 0.5], dtype=torch.float64),))
    np.testing.assert_allclose(t.numpy(), tt.numpy(), rtol=1e-12)
    jf = dp.jacobian(f, mode="fwd")(x).numpy()
    jr = dp.jacobian(f, mode="rev")(x).numpy()
    np.testing.assert_allclose(jf, jr, rtol=1e-12)


def test_issue_jvp_numbers():
    _, t = dp.jvp(_f_iadd, (np.array([1., 2, 3]),), (np.ones(3),))
    np.testing.assert_array_equal(t.numpy(), [3, 5, 7])


# -- integer inputs are saved like every other input ----------------------------------------------
def test_cross_entropy_labels_edited_after_forward_raise():
    z = dp.tensor(np.random.default_rng(0).normal(size=(3, 4)), requires_grad=True)
    lab = dp.tensor([0, 1, 2])
    loss = F.cross_entropy(z, lab)
    lab[0] = 2
    with pytest.raises(RuntimeError, match="cross_entropy.*in-place"):
        loss.backward()


def test_embedding_indices_edited_after_forward_raise():
    w = dp.tensor(np.random.default_rng(0).normal(size=(5, 2)), requires_grad=True)
    idx = dp.tensor([0, 1])
    out = F.embedding(idx, w)
    idx[0] = 3
    with pytest.raises(RuntimeError, match="getitem.*index.*in-place"):
        out.sum().backward()


def test_plain_array_inputs_are_copied_when_recorded():
    # an ndarray has no version counter: the node keeps its own copy, so the gradient is the forward's
    rng = np.random.default_rng(1)
    z0 = rng.normal(size=(3, 4))
    lab = np.array([0, 1, 2])
    z = dp.tensor(z0, requires_grad=True)
    loss = F.cross_entropy(z, lab)
    lab[0] = 3
    loss.backward()
    zt = torch.tensor(z0, requires_grad=True)
    torch.nn.functional.cross_entropy(zt, torch.tensor([0, 1, 2])).backward()
    np.testing.assert_allclose(np.asarray(z.grad), zt.grad.numpy(), rtol=1e-12)
    w = dp.tensor(rng.normal(size=(5, 2)), requires_grad=True)
    idx = np.array([0, 0, 4])
    out = w[idx]
    idx[:] = 1
    out.sum().backward()
    np.testing.assert_array_equal(np.asarray(w.grad)[:, 0], [2, 0, 0, 0, 1])
    c = np.array([1., 2.])
    x = dp.tensor([3., 4.], requires_grad=True)
    y = (x * c).sum()
    c[:] = 100
    y.backward()
    np.testing.assert_array_equal(np.asarray(x.grad), [1, 2])


_RNG = np.random.default_rng(7)
_INPLACE = {
    "iadd": lambda h, v: h.__iadd__(v * v),
    "isub": lambda h, v: h.__isub__(v.sin()),
    "imul": lambda h, v: h.__imul__(v + 2.0),
    "itruediv": lambda h, v: h.__itruediv__(v * v + 1.0),
    "ipow": lambda h, v: h.__ipow__(2.0),
    "ipow_tensor": lambda h, v: h.__ipow__(v.sigmoid()),
    "imatmul": lambda h, v: h.__imatmul__(v.reshape(2, 2).T.sin()) if h.shape == (2, 2) else h,
    "setitem_slice": lambda h, v: h.__setitem__(slice(0, 1), v[1:2] * v[0:1]) or h,
    "setitem_int_array": lambda h, v: h.__setitem__(np.array([3, 0]), v[:2].exp()) or h,
    "setitem_mask": lambda h, v: h.__setitem__(np.array([True, False, True, False]), v[1:3] * 3) or h,
    "np_copyto": lambda h, v: np.copyto(h, v.cos()) or h,
}


@pytest.mark.parametrize("name", list(_INPLACE))
def test_forward_mode_equals_reverse_mode_through_in_place_variants(name):
    edit = _INPLACE[name]
    x0 = _RNG.uniform(0.5, 1.5, 4)

    def f(v):
        h = v * 2.0 + v  # (no op saves h itself: an edit of it is legal in reverse mode too)
        if name == "imatmul":
            h = h.reshape(2, 2) * 1.0  # (not a view: an in-place change of a view is refused)
        r = edit(h, v)
        r = h if r is None else r
        return (r * 1.5).reshape(-1)
    fwd = dp.jacobian(f, mode="fwd")(x0).numpy()
    rev = dp.jacobian(f, mode="rev")(x0).numpy()
    np.testing.assert_allclose(fwd, rev, rtol=1e-10, atol=1e-12)
    eps = 1e-6
    fd = np.stack([(f(dp.tensor(x0 + eps * e)).numpy() - f(dp.tensor(x0 - eps * e)).numpy()) / (2 * eps)
                   for e in np.eye(4)], -1)
    np.testing.assert_allclose(fwd, fd, rtol=1e-5, atol=1e-7)


def test_forward_mode_in_place_change_through_a_view_is_refused():
    def f(v):
        h = v * 1.0
        hv = h[0:2]
        hv *= 3.0  # the base h would not see the tangent: refused, as reverse mode refuses it
        return h
    with pytest.raises(RuntimeError, match="view of another tensor's memory.*forward mode"):
        dp.jvp(f, (np.ones(3),), (np.ones(3),))


def _retain_then_imul(T, lib):
    x = T([1., 2., 3.])
    h = x * 2.0
    h.retain_grad()
    h *= x
    (h * h).sum().backward()
    return [x, h]


def _view_of_changed_base(T, lib):
    x = T([1., 2., 3.])
    h = x * 2.0
    v = h[:2]
    w = v.reshape(2, 1)  # a view of a view
    h *= 3.0
    (v.sum() + (w * w).sum()).backward()
    return [x]


def _view_used_before_and_after(T, lib):
    x = T([1., 2., 3.])
    h = x * 2.0
    v = h[1:]
    a = v * 5.0
    h[0] = x[2] * x[1]  # a write outside the view's region
    h += 1.0
    (a.sum() + v.sum() * 2).backward()
    return [x]


def _preallocated_outputs(T, lib):  # an RNN-style buffer: each step reads the previous slot
    x = T([0.5, -0.3])
    buf = x.new_zeros((3, 2)) if lib == "torch" else dp.zeros((3, 2), dtype=np.float64)
    buf[0] = x.tanh()
    for t in range(1, 3):
        prev = buf[t - 1]
        buf[t] = (prev * 1.5 + x).tanh()
    (buf * buf).sum().backward()
    return [x]


def test_numpy_out_into_a_tensor_is_an_in_place_write():
    x = dp.tensor([1., 2., 3.], requires_grad=True)
    h = x * 1.0
    y = h * 2.0
    r = np.multiply(h, x, out=h)  # as h *= x
    assert r is h
    np.testing.assert_array_equal(h.numpy(), [1, 4, 9])
    (y.sum() + h.sum()).backward()
    xt = torch.tensor([1., 2., 3.], dtype=torch.float64, requires_grad=True)
    ht = xt * 1.0
    yt = ht * 2.0
    ht.mul_(xt)
    (yt.sum() + ht.sum()).backward()
    np.testing.assert_allclose(np.asarray(x.grad), xt.grad.numpy())
    _, t = dp.jvp(lambda v: (lambda h: np.add(h, v * v, out=h))(v * 1.0), (np.array([1., 2.]),), (np.ones(2),))
    np.testing.assert_array_equal(t.numpy(), [3, 5])
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        np.add(x, 1, out=x)
    with pytest.raises(TypeError, match="same_kind"):
        np.add(dp.tensor([1, 2]), 0.5, out=dp.tensor([1, 2]))
