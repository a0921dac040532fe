"""conv2d and max_pool2d: against naive loops, gradcheck (stride/padding), higher order, errors."""
import numpy as np
import pytest

import deltaprop as dp
from deltaprop import nn
from deltaprop.nn import functional as F


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def naive_conv(x, w, b, stride, padding):
    sh, sw = stride
    ph, pw = padding
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(n):
        for k in range(o):
            for r in range(ho):
                for s in range(wo):
                    patch = xp[i, :, r * sh:r * sh + kh, s * sw:s * sw + kw]
                    out[i, k, r, s] = (patch * w[k]).sum() + (0 if b is None else b[k])
    return out


def naive_pool(x, kernel, stride, padding):
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    n, c, h, wd = x.shape
    xp = np.full((n, c, h + 2 * ph, wd + 2 * pw), -np.inf)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, c, ho, wo))
    grad_pos = np.zeros((n, c, ho, wo, 2), int)
    for i in range(n):
        for k in range(c):
            for r in range(ho):
                for s in range(wo):
                    win = xp[i, k, r * sh:r * sh + kh, s * sw:s * sw + kw]
                    out[i, k, r, s] = win.max()
                    a, bb = np.unravel_index(np.argmax(win), win.shape)  # first max, row-major
                    grad_pos[i, k, r, s] = (r * sh + a - ph, s * sw + bb - pw)
    return out, grad_pos


CONV_CASES = [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((2, 1), (0, 2)), ((3, 2), (1, 0))]


@pytest.mark.parametrize("stride,padding", CONV_CASES)
def test_conv2d_matches_naive_loops(stride, padding):
    x, w, b = rand(2, 3, 7, 6), rand(4, 3, 3, 2, seed=1), rand(4, seed=2)
    out = F.conv2d(dp.tensor(x), dp.tensor(w), dp.tensor(b), stride=stride, padding=padding)
    np.testing.assert_allclose(out.data, naive_conv(x, w, b, stride, padding), atol=1e-12)
    out = F.conv2d(x, w, None, stride, padding)
    np.testing.assert_allclose(out.data, naive_conv(x, w, None, stride, padding), atol=1e-12)


@pytest.mark.parametrize("stride,padding", CONV_CASES)
def test_conv2d_gradcheck(stride, padding):
    x = dp.tensor(rand(2, 2, 6, 5), requires_grad=True)
    w = dp.tensor(rand(3, 2, 3, 2, seed=1), requires_grad=True)
    b = dp.tensor(rand(3, seed=2), requires_grad=True)
    assert dp.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding), x, w, b)
    assert dp.gradcheck(lambda x, w: F.conv2d(x, w, stride=stride, padding=padding), x, w)


def test_conv2d_second_order_and_jvp():
    x = dp.tensor(rand(1, 2, 5, 5), requires_grad=True)
    w = dp.tensor(rand(2, 2, 3, 3, seed=1), requires_grad=True)

    def loss(x, w):
        return (F.conv2d(x, w, stride=2, padding=1).tanh() ** 2).sum()

    assert dp.gradcheck(lambda x, w: dp.grad(loss, argnums=(0, 1))(x, w)[0], x, w)
    assert dp.gradcheck(lambda x, w: dp.grad(loss, argnums=(0, 1))(x, w)[1], x, w)
    t = rand(1, 2, 5, 5, seed=3)
    _, tan = dp.jvp(lambda x: F.conv2d(x, w, stride=2, padding=1), (x.data,), (t,))
    np.testing.assert_allclose(tan.data, F.conv2d(t, w.data, stride=2, padding=1).data, atol=1e-12)


def test_conv2d_module_shapes_init_and_unbatched():
    dp.manual_seed(0)
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    assert conv.weight.shape == (8, 3, 3, 3) and conv.bias.shape == (8,)
    assert conv.weight.dtype == np.float32
    bound = 1 / np.sqrt(27)
    assert np.abs(conv.weight.data).max() <= bound
    assert conv(dp.ones(2, 3, 9, 9)).shape == (2, 8, 5, 5)
    assert conv(dp.ones(3, 9, 9)).shape == (8, 5, 5)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert nn.Conv2d(1, 2, (3, 1), bias=False).bias is None
    assert nn.Conv2d(2, 4, 3, padding="same")(dp.ones(1, 2, 7, 6)).shape == (1, 4, 7, 6)
    assert nn.Conv2d(2, 4, 3, padding="valid")(dp.ones(1, 2, 7, 6)).shape == (1, 4, 5, 4)
    with pytest.raises(NotImplementedError):
        nn.Conv2d(2, 4, 3, groups=2)


def test_conv2d_errors_name_layer_and_shapes():
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8\).*\(N, 3, H, W\).*\(2, 1, 9, 9\)"):
        conv(dp.ones(2, 1, 9, 9))
    with pytest.raises(ValueError, match=r"Conv2d.*\(9, 9\)"):
        conv(dp.ones(9, 9))
    with pytest.raises(ValueError, match=r"conv2d: expected input of shape \(N, 3, H, W\)"):
        F.conv2d(dp.ones(1, 2, 5, 5), dp.ones(8, 3, 3, 3))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(dp.ones(1, 3, 2, 2), dp.ones(8, 3, 3, 3))


POOL_CASES = [((2, 2), None, (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0)), ((2, 2), (1, 1), (0, 0)),
              ((2, 2), (3, 3), (0, 0)), ((2, 1), (2, 1), (1, 0))]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_max_pool2d_matches_naive_loops(kernel, stride, padding):
    x = rand(2, 3, 7, 6)
    out = F.max_pool2d(dp.tensor(x), kernel, stride, padding)
    ref, _ = naive_pool(x, kernel, stride or kernel, padding)
    np.testing.assert_array_equal(out.data, ref)


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
def test_max_pool2d_gradcheck(kernel, stride, padding):
    x = dp.tensor(rand(2, 2, 6, 5), requires_grad=True)
    assert dp.gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding), x)


def test_max_pool2d_gradient_goes_to_first_max_on_ties():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 0.0, 0.0],
                    [5.0, 5.0, 1.0, 1.0],
                    [5.0, 5.0, 1.0, 1.0]]]])
    t = dp.tensor(x, requires_grad=True)
    F.max_pool2d(t, 2).sum().backward()
    expect = np.zeros_like(x)
    expect[0, 0, 0, 1] = expect[0, 0, 0, 2] = expect[0, 0, 2, 0] = expect[0, 0, 2, 2] = 1
    np.testing.assert_array_equal(t.grad.data, expect)
    # overlapping windows: each window sends its gradient to its own first maximum
    x = rand(1, 2, 5, 5, seed=4).round(0)  # many ties
    t = dp.tensor(x, requires_grad=True)
    g = rand(1, 2, 4, 4, seed=5)
    F.max_pool2d(t, 2, 1).backward(g)
    _, pos = naive_pool(x, (2, 2), (1, 1), (0, 0))
    expect = np.zeros_like(x)
    for c in range(2):
        for r in range(4):
            for s in range(4):
                expect[0, c, pos[0, c, r, s, 0], pos[0, c, r, s, 1]] += g[0, c, r, s]
    np.testing.assert_allclose(t.grad.data, expect)


@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((3, 3), (3, 3), (1, 1)),
                                                     ((2, 3), (3, 3), (0, 1)), ((3, 1), (3, 2), (0, 0)),
                                                     ((2, 2), (1, 1), (0, 0))])
@pytest.mark.parametrize("create_graph", [False, True])
def test_max_pool2d_gradient_goes_to_first_max_with_many_ties(kernel, stride, padding, create_graph):
    """Every window's gradient lands on its first maximum in row-major order (PyTorch's rule),
    through the fast VJP (disjoint windows, flat shifted comparisons; overlapping ones) and the
    reference VJP (create_graph)."""
    x = rand(2, 3, 8, 7, seed=6).round(0)  # many ties
    t = dp.tensor(x, requires_grad=True)
    out = F.max_pool2d(t, kernel, stride, padding)
    g = rand(*out.shape, seed=7)
    out.backward(g, create_graph=create_graph)
    ref, pos = naive_pool(x, kernel, stride, padding)
    np.testing.assert_array_equal(out.data, ref)
    expect = np.zeros_like(x)
    for n in range(2):
        for c in range(3):
            for r in range(out.shape[2]):
                for s in range(out.shape[3]):
                    expect[n, c, pos[n, c, r, s, 0], pos[n, c, r, s, 1]] += g[n, c, r, s]
    np.testing.assert_allclose(t.grad.data, expect, rtol=1e-13, atol=0)  # (overlapping windows add)


@pytest.mark.parametrize("kernel,stride,padding", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1))])
def test_max_pool2d_nan_gradient_goes_to_the_last_nan_as_pytorch(torch, kernel, stride, padding):
    x = rand(1, 2, 6, 6, seed=8)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[0, 1, 2, 3] = x[0, 1, 3, 3] = x[0, 1, 5, 5] = np.nan
    xt, xs = torch.tensor(x, requires_grad=True), dp.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(xt, kernel, stride, padding)
    g = rand(*out_t.shape, seed=9)
    out_t.backward(torch.tensor(g))
    F.max_pool2d(xs, kernel, stride, padding).backward(g)
    np.testing.assert_array_equal(xs.grad.data, xt.grad.numpy())


def test_max_pool2d_second_order_and_module():
    x = dp.tensor(rand(1, 2, 6, 6), requires_grad=True)
    assert dp.gradcheck(lambda x: dp.grad(lambda y: (F.max_pool2d(y, 3, 2, 1) ** 2).sum())(x), x)
    pool = nn.MaxPool2d(2)
    assert pool(dp.ones(2, 3, 8, 8)).shape == (2, 3, 4, 4)
    assert pool(dp.ones(3, 8, 7)).shape == (3, 4, 3)
    assert pool(dp.ones(1, 1, 8, 8)).dtype == np.float32
    with pytest.raises(ValueError, match=r"max_pool2d.*\(8, 8\)"):
        pool(dp.ones(8, 8))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(dp.ones(1, 1, 8, 8), 2, padding=2)


def test_small_cnn_trains():
    dp.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).astype(np.int64)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 16, 2))
    losses = []
    for _ in range(60):
        model.zero_grad()
        loss = F.cross_entropy(model(dp.tensor(x)), y)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_conv_and_pool_match_pytorch(torch):
    x, w, b = rand(2, 3, 9, 8), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    g = rand(2, 4, 5, 4, seed=3)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    torch.nn.functional.conv2d(xt, wt, bt, stride=2, padding=1).backward(torch.tensor(g))
    xs, ws, bs = (dp.tensor(a, requires_grad=True) for a in (x, w, b))
    F.conv2d(xs, ws, bs, 2, 1).backward(g)
    for ours, theirs in ((xs, xt), (ws, wt), (bs, bt)):
        np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), atol=1e-10)
    x = rand(2, 3, 7, 7, seed=4).round(1)
    xt, xs = torch.tensor(x, requires_grad=True), dp.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(xt, 3, 2, 1)
    out_t.backward(torch.ones_like(out_t))
    out = F.max_pool2d(xs, 3, 2, 1)
    out.backward(np.ones(out.shape))
    np.testing.assert_array_equal(out.data, out_t.detach().numpy())
    np.testing.assert_array_equal(xs.grad.data, xt.grad.numpy())


@pytest.mark.parametrize("shape", [(4, 8, 16, 16), (3, 5, 7, 9)])
def test_max_pool2d_gradient_on_recycled_buffers_matches_the_naive_scatter(shape):
    """Large inputs take recycled arrays for the scattered gradient; where the windows tile the
    input exactly the buffer is written, not zeroed first, so every slot must be overwritten."""
    rng = np.random.default_rng(2)
    for _ in range(3):  # later rounds reuse the previous round's arrays
        x = rng.standard_normal(shape)
        g = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
        t = dp.tensor(x, requires_grad=True)
        F.max_pool2d(t, 2).backward(g)
        expect = np.zeros_like(x)
        for n in range(shape[0]):
            for c in range(shape[1]):
                for i in range(shape[2] // 2):
                    for j in range(shape[3] // 2):
                        win = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                        a, b = np.unravel_index(np.argmax(win), (2, 2))
                        expect[n, c, 2 * i + a, 2 * j + b] = g[n, c, i, j]
        np.testing.assert_array_equal(t.grad.data, expect)


def test_conv2d_weight_gradient_from_kept_patches_through_a_retained_graph():
    """The forward keeps its im2col patches for the weight's gradient; a second backward through
    the retained graph rebuilds them and gives the same gradients."""
    rng = np.random.default_rng(7)
    x = dp.tensor(rng.standard_normal((3, 2, 9, 8)))
    w = dp.tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    b = dp.tensor(rng.standard_normal(4), requires_grad=True)
    y = (F.conv2d(x, w, b, stride=2, padding=1) ** 2).sum()
    y.backward(retain_graph=True)
    first = w.grad.numpy(), b.grad.numpy()
    w.grad = b.grad = None
    y.backward()
    np.testing.assert_array_equal(w.grad.data, first[0])
    np.testing.assert_array_equal(b.grad.data, first[1])
    assert dp.gradcheck(lambda w, b: (F.conv2d(x, w, b, stride=2, padding=1) ** 2).sum(), w, b)
