"""The interactive HTML report: size, self-containment, and the page in real headless Chromium.

The data comes from small networks trained here by a hand-written NumPy loop, and every
number the page shows is checked against NumPy float64, formatted with Python's '%.9g'.
Browser tests skip (with the reason) when playwright or Chromium is missing, except under
CI=true, where they fail.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from deltaprop.explain.report import render_report, write_report

# --------------------------------------------------------------------------- training data
def _act(name, z):
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, z * 0.01)
    raise ValueError(name)


def _dact(name, z, a):
    if name == "tanh":
        return 1.0 - a * a
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, 1.0, 0.01)
    raise ValueError(name)


def _forward(params, X, act, output):
    """nets and outs per neuron layer (layer 0 = the input), for a batch X (N, in)."""
    nets, outs = [X], [X]
    a = X
    for l, layer in enumerate(params):
        z = a @ layer["W"].T + layer["b"]
        if l < len(params) - 1:
            a = _act(act, z)
        elif output == "sigmoid":
            a = 1.0 / (1.0 + np.exp(-z))
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            a = e / e.sum(axis=1, keepdims=True)
        nets.append(z)
        outs.append(a)
    return nets, outs


def _output_delta(out, y, output):
    """dLoss/dnet of the output layer for each sample alone (BCE or CE, not averaged)."""
    if output == "sigmoid":
        return out - y.reshape(-1, 1)
    onehot = np.zeros_like(out)
    onehot[np.arange(len(y)), y] = 1.0
    return out - onehot


def _deltas(params, nets, outs, y, act, output):
    """Per-sample deltas of every neuron layer; layer 0 holds dLoss/dx."""
    L = len(params)
    deltas = [None] * (L + 1)
    deltas[L] = _output_delta(outs[L], y, output)
    for l in range(L - 1, -1, -1):
        back = deltas[l + 1] @ params[l]["W"]
        deltas[l] = back if l == 0 else _dact(act, nets[l], outs[l]) * back
    return deltas


def make_dataset(kind, n, seed):
    rng = np.random.default_rng(seed)
    if kind == "xor":  # two interleaved pairs of blobs: not linearly separable
        centres = np.array([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [1.0, -1.0]])
        which = rng.integers(0, 4, n)
        X = centres[which] + rng.normal(0.0, 0.35, (n, 2))
        y = (which >= 2).astype(np.int64)
    else:  # three blobs, three classes
        centres = np.array([[0.0, 1.2], [-1.1, -0.7], [1.1, -0.7]])
        y = rng.integers(0, 3, n)
        X = centres[y] + rng.normal(0.0, 0.4, (n, 2))
    return X, y


def train(sizes, act, output, X, y, steps, lr, seed=0, title="test report", dataset="xor"):
    """Full-batch gradient descent; record weights (before the update) and batch gradients."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        params.append({"W": rng.uniform(-bound, bound, (fan_out, fan_in)) * 2.0,
                       "b": rng.uniform(-bound, bound, fan_out)})
    n = len(X)
    rec_params, losses = [], []
    for _ in range(steps):
        nets, outs = _forward(params, X, act, output)
        p = outs[-1]
        if output == "sigmoid":
            q = p[:, 0]
            loss = -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))
        else:
            loss = -np.mean(np.log(p[np.arange(n), y]))
        dz = _output_delta(p, y, output) / n
        grads = [None] * len(params)
        for l in range(len(params) - 1, -1, -1):
            grads[l] = {"gW": dz.T @ outs[l], "gb": dz.sum(axis=0)}
            if l > 0:
                dz = (dz @ params[l]["W"]) * _dact(act, nets[l], outs[l])
        rec_params.append([{"W": layer["W"].copy(), "b": layer["b"].copy(),
                            "gW": g["gW"], "gb": g["gb"]} for layer, g in zip(params, grads)])
        losses.append(float(loss))
        for layer, g in zip(params, grads):
            layer["W"] = layer["W"] - lr * g["gW"]
            layer["b"] = layer["b"] - lr * g["gb"]
    return {
        "title": title, "dataset": dataset, "sizes": list(sizes), "activation": act,
        "output": output, "X": X, "y": y, "steps": list(range(steps)), "loss": losses,
        "params": rec_params, "lr": lr,
    }


def reference(data, k, sample):
    """NumPy float64 net/out/delta of every neuron at recorded step k for one sample."""
    params = [{"W": np.asarray(p["W"], dtype=np.float64), "b": np.asarray(p["b"], dtype=np.float64)}
              for p in data["params"][k]]
    x = np.asarray(data["X"], dtype=np.float64)[sample:sample + 1]
    y = np.asarray(data["y"])[sample:sample + 1]
    nets, outs = _forward(params, x, data["activation"], data["output"])
    deltas = _deltas(params, nets, outs, y, data["activation"], data["output"])
    return [(outs[l][0], deltas[l][0], nets[l][0]) for l in range(len(outs))]


CONFIGS = {
    "tanh-sigmoid": dict(sizes=[2, 4, 4, 1], act="tanh", output="sigmoid", kind="xor", lr=0.5),
    "relu-softmax": dict(sizes=[2, 3, 3], act="relu", output="softmax", kind="blobs", lr=0.3),
    "sigmoid-softmax": dict(sizes=[2, 3, 3], act="sigmoid", output="softmax", kind="blobs", lr=1.0),
    "leaky-sigmoid": dict(sizes=[2, 5, 1], act="leaky_relu", output="sigmoid", kind="xor", lr=0.3),
}


def config_data(name, n=40, steps=30):
    c = CONFIGS[name]
    X, y = make_dataset(c["kind"], n, seed=1)
    return train(c["sizes"], c["act"], c["output"], X, y, steps, c["lr"], seed=2,
                 title=f"deltaprop test: {name}", dataset=c["kind"])


def embedded_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="deltaprop-data">(.*?)</script>', page, re.S)
    assert m, "no embedded data"
    return json.loads(m.group(1))


# --------------------------------------------------------------------------- no browser
def test_page_for_200_steps_is_small_and_fetches_nothing(tmp_path):
    X, y = make_dataset("xor", 200, seed=3)
    data = train([2, 4, 4, 1], "tanh", "sigmoid", X, y, steps=200, lr=0.5)
    path = write_report(data, tmp_path / "report.html")
    size = path.stat().st_size
    assert size < 2_000_000, f"report is {size} bytes"
    page = path.read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""\b(src|href)\s*=""", page, re.I), "the page must not load anything"
    assert not re.search(r"@import|url\(", page), "the CSS must not load anything"
    assert page.count("<script") == 2 and "<script src" not in page
    # the weights travel at full float64 precision
    emb = embedded_json(page)
    assert emb["sizes"] == [2, 4, 4, 1] and len(emb["params"]) == 200
    for k in (0, 117, 199):
        for l in range(3):
            for key in ("W", "b", "gW", "gb"):
                np.testing.assert_array_equal(np.asarray(emb["params"][k][l][key]), data["params"][k][l][key])
    np.testing.assert_array_equal(np.asarray(emb["X"]), X)
    assert emb["y"] == y.tolist()
    assert emb["loss"] == data["loss"]


def test_render_report_escapes_and_handles_non_finite():
    data = config_data("tanh-sigmoid", n=8, steps=3)
    data["title"] = "a </script><b>bold</b> & more"
    data["loss"] = [float("nan"), float("inf"), 0.5]
    page = render_report(data)
    assert "</script><b>" not in page
    assert page.count("</script>") == 2
    emb = embedded_json(page)
    assert emb["title"] == data["title"]
    assert emb["loss"] == ["NaN", "Infinity", 0.5]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("params"), "lacks params"),
    (lambda d: d.update(activation="softsign"), "activation"),
    (lambda d: d.update(output="linear"), "output"),
    (lambda d: d.update(sizes=[2, 4, 4, 2]), "sigmoid output has 1 unit"),
    (lambda d: d.update(y=[0, 1, 2] + [0] * (len(d["X"]) - 3)), "y[2]"),
    (lambda d: d.update(loss=d["loss"][:-1]), "loss has length"),
    (lambda d: d["params"][1][0].update(W=np.zeros((4, 3))), "params[1][0]['W'] has shape (4, 3)"),
    (lambda d: d["params"][0][2].update(gb=np.zeros(2)), "params[0][2]['gb'] has length 2"),
    (lambda d: d.update(X=np.zeros((len(d["X"]), 3))), "X"),
])
def test_render_report_rejects_bad_data(change, message):
    data = config_data("tanh-sigmoid", n=8, steps=3)
    change(data)
    with pytest.raises(ValueError, match=re.escape(message)):
        render_report(data)


def test_write_report_is_atomic_and_replaces(tmp_path):
    data = config_data("relu-softmax", n=10, steps=4)
    target = tmp_path / "r.html"
    target.write_text("old")
    write_report(data, target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    bad = dict(data, sizes=[2, 3])
    with pytest.raises(ValueError):
        write_report(bad, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    with pytest.raises(OSError):
        write_report(data, tmp_path / "missing-dir" / "r.html")


# --------------------------------------------------------------------------- the browser
class Page:
    """One loaded report with its console errors and network requests recorded."""

    def __init__(self, browser, path):
        self.url = path.as_uri()
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000})
        self.page = self.context.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready='true']", timeout=15000)

    def set_step(self, k):
        self.page.eval_on_selector("#step", """(el, v) => {
            el.value = String(v);
            el.dispatchEvent(new Event('input', {bubbles: true}));
            el.dispatchEvent(new Event('change', {bubbles: true}));
        }""", k)

    def set_sample(self, n):
        self.page.select_option("#sample", str(n))

    def neurons(self):
        return self.page.eval_on_selector_all("[data-layer]", """els => els.map(e => ({
            tag: e.tagName, layer: +e.dataset.layer, neuron: +e.dataset.neuron,
            out: e.dataset.out, delta: e.dataset.delta, net: e.dataset.net,
            fill: e.getAttribute('fill')}))""")

    def drawing(self):
        return self.page.eval_on_selector_all(".link, [data-layer]", """els => els.map(e =>
            [e.getAttribute('stroke'), e.getAttribute('stroke-width'), e.getAttribute('fill'),
             e.getAttribute('data-w')].join('|'))""")

    def close(self):
        assert self.errors == [], f"console errors: {self.errors}"
        assert set(self.requests) <= {self.url}, f"the page made requests: {self.requests}"
        self.context.close()


def _g9(v):
    return "%.9g" % v


def _compare(shown, expected, where, loose):
    """Exact '%.9g' string match; a last-digit float difference is recorded in `loose`."""
    if shown == expected:
        return
    a, b = float(shown), float(expected)
    assert math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-300), f"{where}: page {shown}, NumPy {expected}"
    loose.append(f"{where}: page {shown}, NumPy {expected}")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_page_numbers_equal_numpy(browser, tmp_path, name):
    data = config_data(name)
    path = write_report(data, tmp_path / f"{name}.html")
    pg = Page(browser, path)
    sizes = data["sizes"]
    loose = []
    for k in (0, 11, len(data["steps"]) - 1):
        for sample in (0, 7, len(data["X"]) - 1):
            pg.set_step(k)
            pg.set_sample(sample)
            shown = pg.neurons()
            assert len(shown) == sum(sizes)
            assert all(s["tag"].lower() == "circle" for s in shown)
            assert sorted((s["layer"], s["neuron"]) for s in shown) == \
                [(l, j) for l, n in enumerate(sizes) for j in range(n)]
            ref = reference(data, k, sample)
            for s in shown:
                out, delta, net = (r[s["neuron"]] for r in ref[s["layer"]])
                where = f"{name} step {k} sample {sample} neuron {s['layer']},{s['neuron']}"
                _compare(s["out"], _g9(out), where + " out", loose)
                _compare(s["delta"], _g9(delta), where + " delta", loose)
                _compare(s["net"], _g9(net), where + " net", loose)
    if loose:  # not expected: the page and NumPy do the same float64 operations
        warnings.warn(f"{len(loose)} last-digit differences: {loose[:5]}")
    pg.close()


def test_page_interactions(browser, tmp_path):
    data = config_data("tanh-sigmoid")
    path = write_report(data, tmp_path / "report.html")
    pg = Page(browser, path)
    page = pg.page

    # the slider moves the drawing
    pg.set_step(0)
    first = pg.drawing()
    first_marker = page.get_attribute("#loss-marker", "cx")
    pg.set_step(len(data["steps"]) - 1)
    last = pg.drawing()
    assert first != last
    assert page.get_attribute("#loss-marker", "cx") != first_marker
    assert page.get_attribute("body", "data-step") == str(data["steps"][-1])
    boundary_last = page.evaluate("document.getElementById('boundary').toDataURL()")
    pg.set_step(0)
    assert page.evaluate("document.getElementById('boundary').toDataURL()") != boundary_last

    # the backward switch shows deltas and gradients instead of outputs and weights
    pg.set_step(5)
    pg.set_sample(3)
    forward = pg.drawing()
    heading = page.text_content("#net-heading")
    page.check("#backward")
    assert page.get_attribute("body", "data-view") == "backward"
    backward = pg.drawing()
    assert backward != forward
    assert page.text_content("#net-heading") != heading
    assert "δ" in page.text_content("#legend")
    # in the backward view, a neuron's label is its delta
    labels = page.eval_on_selector_all(".neuron-value", "els => els.map(e => e.textContent)")
    ref = reference(data, 5, 3)
    out_delta = ref[-1][1][0]
    assert float(labels[-1]) == pytest.approx(out_delta, rel=1e-2)
    page.uncheck("#backward")
    assert pg.drawing() == forward

    # clicking a hidden neuron shows its numbers and its delta's formula
    page.click("circle[data-layer='1'][data-neuron='2']")
    details = page.text_content("#details")
    out, delta, net = (r[2] for r in ref[1])
    assert "f′(net)" in details and "Σₖ wₖⱼ · δₖ" in details
    assert _g9(delta) in details and _g9(out) in details and _g9(net) in details
    w_next = data["params"][5][1]["W"][:, 2]
    d_next = ref[2][1]
    for w, d in zip(w_next, d_next):  # every term of the sum, with its numbers
        assert _g9(w).lstrip("-") in details and _g9(d).lstrip("-") in details
    assert page.get_attribute("circle[data-layer='1'][data-neuron='2']", "class").endswith("selected")
    # ... and the output neuron shows delta = out - y
    page.click("circle[data-layer='3'][data-neuron='0']")
    details = page.text_content("#details")
    assert "δ = out − y" in details and _g9(ref[3][1][0]) in details
    # ... and an input neuron dLoss/dx
    page.click("circle[data-layer='0'][data-neuron='1']")
    assert _g9(ref[0][1][1]) in page.text_content("#details")

    # clicking a point in the decision-boundary plot picks that sample
    pg.set_step(len(data["steps"]) - 1)
    page.evaluate("window.deltapropReport.setSample(0)")
    page.locator("#boundary").scroll_into_view_if_needed()
    box = page.locator("#boundary").bounding_box()
    X = np.asarray(data["X"])
    pad = 0.08
    x0, x1 = X[:, 0].min(), X[:, 0].max()
    y0, y1 = X[:, 1].min(), X[:, 1].max()
    n = 9
    fx = (X[n, 0] - (x0 - pad * (x1 - x0))) / ((x1 - x0) * (1 + 2 * pad))
    fy = 1 - (X[n, 1] - (y0 - pad * (y1 - y0))) / ((y1 - y0) * (1 + 2 * pad))
    page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    assert page.input_value("#sample") == str(n)

    # the play button walks through the steps
    pg.set_step(0)
    page.click("#play")
    page.wait_for_function("document.body.dataset.step !== '0'", timeout=5000)
    page.click("#play")

    # a screenshot is not blank
    page.evaluate("window.scrollTo(0, 0)")
    pixels = _screenshot_pixels(page)
    assert pixels.std() > 20, "the screenshot looks blank"
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97, :3]}
    assert len(colours) > 50
    pg.close()


def test_format_g9_in_browser_matches_python(browser, tmp_path):
    rng = np.random.default_rng(0)
    values = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 2.5, 1e-5, 1.23456789e-05, 1e-4, 9.99999999e-5,
              9.999999995e-5, 0.0001, 0.00012345678949999, 123456789.0, 1234567890.0, 999999999.0,
              999999999.5, 9999999995.0, 1234567885.0, 1234567895.0, 123456788.5, 123456789.5,
              1e9, 1e16, 1e21, 1e22, 1e100, 1e-100, 5e-324, 2.2250738585072014e-308,
              1.7976931348623157e308, 0.1 + 0.2, 1 / 3, 2 / 3, math.pi, math.e, -math.pi * 1e-7,
              float("nan"), float("inf"), float("-inf"), 0.0821670406, 0.741365070, 0.186815602]
    values += [float(2.0 ** e) for e in range(-1074, 1024, 7)]
    values += [float(v) for v in rng.standard_normal(2000)]
    values += [float(v) for v in rng.standard_normal(2000) * 10.0 ** rng.integers(-12, 12, 2000)]
    values += [float(v) for v in 10.0 ** rng.uniform(-320, 308, 1000) * rng.choice([-1, 1], 1000)]
    bits = rng.integers(0, 2 ** 63 - 1, 1000, dtype=np.int64)
    values += [v for v in bits.view(np.float64).tolist() if math.isfinite(v)]
    # exact 10-digit ties and their neighbours (round-half-even in Python)
    for m in rng.integers(10 ** 9, 10 ** 10, 300):
        v = float(int(m) // 10 * 10 + 5)
        values += [v, math.nextafter(v, 0), math.nextafter(v, math.inf), v / 1024, v / 2 ** 40]
    path = tmp_path / "fmt.html"
    write_report(config_data("tanh-sigmoid", n=5, steps=2), path)
    pg = Page(browser, path)
    got = pg.page.evaluate("""vals => vals.map(s => window.deltapropReport.formatG(
        s === 'nan' ? NaN : s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s), 9))""",
                           [repr(v) for v in values])
    wrong = [(repr(v), g, _g9(v)) for v, g in zip(values, got) if g != _g9(v)]
    assert wrong == [], f"{len(wrong)} of {len(values)} differ, e.g. {wrong[:10]}"
    pg.close()


def _screenshot_pixels(page) -> np.ndarray:
    """The viewport's pixels: decoded by Pillow when it is installed, else by _decode_png."""
    try:
        from PIL import Image
    except ImportError:  # the pure decoder is slow: a smaller picture
        return _decode_png(page.screenshot(clip={"x": 0, "y": 0, "width": 640, "height": 480}))
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), dtype=np.int64)


def _decode_png(data: bytes) -> np.ndarray:
    """A minimal PNG decoder (8-bit RGB/RGBA, no interlace) for screenshot checks."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    buf = io.BytesIO(raw)
    for r in range(height):
        ftype = buf.read(1)[0]
        line = np.frombuffer(buf.read(stride), dtype=np.uint8).astype(np.int64)
        if ftype == 0:
            cur = line
        elif ftype == 2:
            cur = (line + prev) & 255
        else:  # sub, average and Paeth depend on the pixel to the left: go pixel by pixel
            cur = np.zeros(stride, dtype=np.int64)
            for i in range(stride):
                left = cur[i - channels] if i >= channels else 0
                up = prev[i]
                if ftype == 1:
                    pred = left
                elif ftype == 3:
                    pred = (left + up) >> 1
                else:
                    ul = prev[i - channels] if i >= channels else 0
                    p = left + up - ul
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                cur[i] = (line[i] + pred) & 255
        out[r] = cur
        prev = cur
    return out.reshape(height, width, channels)


def test_page_without_2d_inputs_hides_the_boundary(browser, tmp_path):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 6))
    y = rng.integers(0, 4, 30)
    data = train([6, 5, 4], "leaky_relu", "softmax", X, y, steps=12, lr=0.2)
    pg = Page(browser, write_report(data, tmp_path / "r.html"))
    assert pg.page.eval_on_selector("#boundary-card", "e => e.classList.contains('hidden')")
    pg.set_step(4)
    pg.set_sample(29)
    shown = pg.neurons()
    ref = reference(data, 4, 29)
    loose = []
    for s in shown:
        out, delta, net = (r[s["neuron"]] for r in ref[s["layer"]])
        _compare(s["out"], _g9(out), "out", loose)
        _compare(s["delta"], _g9(delta), "delta", loose)
    assert loose == []
    pg.page.click("circle[data-layer='2'][data-neuron='3']")
    assert "p" in pg.page.text_content("#details") and _g9(ref[2][1][3]) in pg.page.text_content("#details")
    pg.close()


def test_page_survives_a_diverged_run(browser, tmp_path):
    data = config_data("tanh-sigmoid", n=12, steps=6)
    data["loss"][-1] = float("nan")
    data["params"][-1][1]["W"] = np.full((4, 4), np.nan)
    data["params"][-1][0]["b"] = np.array([np.inf, -np.inf, 0.0, 1.0])
    pg = Page(browser, write_report(data, tmp_path / "r.html"))
    pg.set_step(5)
    shown = {(s["layer"], s["neuron"]): s for s in pg.neurons()}
    assert shown[(2, 0)]["out"] == "nan" and shown[(1, 0)]["out"] == "1"
    assert "nan" in pg.page.text_content("#loss-value")
    pg.page.check("#backward")
    pg.page.click("circle[data-layer='1'][data-neuron='1']")
    pg.close()


# --------------------------------------------------------------------------- the depth view and the new controls
def _deep_sigmoid_data(steps=20, lr=0.5):
    from deltaprop.explain.record import report_data

    return report_data("moons", [6, 6, 6, 6, 6], steps, "sigmoid", lr=lr, loss="mse")


def _numpy_depth(data, k, samples):
    """mean over samples and neurons of |delta| per neuron layer (0 = dLoss/dx), each sample a batch of one."""
    from deltaprop.explain.record import report_loss, report_model
    from deltaprop.explain.trace import trace

    model = report_model(data, k)
    goal = np.asarray(data.get("targets", data["y"]))
    rows = []
    for n in range(samples):
        tr = trace(model, np.asarray(data["X"])[n:n + 1], goal[n:n + 1], report_loss(data))
        W0 = tr.layers[0].weight
        rows.append([np.abs(tr.layers[0].delta @ W0).mean()] + [np.abs(l.delta).mean() for l in tr.layers])
    return np.mean(rows, axis=0)


def test_mazur_page_shows_the_posts_deltas_and_mse_pages_equal_the_engine(browser, tmp_path):
    from deltaprop.explain.record import report_data

    data = report_data("mazur", steps=5)
    assert data["output"] == "sse" and data["sizes"] == [2, 2, 2]
    pg = Page(browser, write_report(data, tmp_path / "mazur.html"))
    pg.set_step(0)
    shown = {(s["layer"], s["neuron"]): s for s in pg.neurons()}
    assert shown[(2, 0)]["delta"] == "0.138498562" and shown[(1, 0)]["delta"] == "0.00877135469"
    assert shown[(2, 0)]["out"] == "0.75136507"
    pg.page.click("circle[data-layer='2'][data-neuron='0']")
    assert "−(t − out) × out (1 − out)" in pg.page.text_content("#details")
    # the post's targets, each beside its output neuron, never rounded to a class label
    targets = pg.page.eval_on_selector_all("text[data-target]", "els => els.map(e => e.textContent)")
    assert targets == ["t = 0.01", "t = 0.99"]
    box = pg.page.eval_on_selector("#target-label", "e => [e.getBBox().x + e.getBBox().width, "
                                   "e.ownerSVGElement.viewBox.baseVal.width]")
    assert box[0] <= box[1]                       # the label is not cut at the drawing's edge
    option = pg.page.text_content("#sample option")
    assert "t = (0.01, 0.99)" in option and "y = " not in option
    # the post's names (i1, h1, o1), one pattern: no decision-boundary card, "1 sample"
    names = pg.page.eval_on_selector_all("text.neuron-name", "els => els.map(e => e.textContent)")
    assert names == ["i1", "i2", "h1", "h2", "o1", "o2"]
    assert pg.page.eval_on_selector("#boundary-card", "e => e.classList.contains('hidden')")
    assert pg.page.is_hidden("#boundary-card")
    sub = pg.page.text_content("p.sub")
    assert "· 1 sample ·" in sub and "1 samples" not in sub
    assert "Neuron o1 — output layer, neuron 1 of 2" in pg.page.text_content("#details")
    cells = pg.page.eval_on_selector_all("#details table.grads td:first-child", "els => els.map(e => e.textContent)")
    assert cells == ["w5", "w6", "bias"]                       # the post's weight names
    tip = pg.page.text_content("line[data-link='1,1,0'] title")
    assert tip.startswith("w7: h1 → o2")
    assert pg.errors == []
    pg.close()
    # MSE over sigmoid outputs, three classes: the page's deltas equal the engine's (per sample)
    from deltaprop.explain.record import report_loss, report_model
    from deltaprop.explain.trace import trace

    data = report_data("spirals", [5], 6, "tanh", loss="mse")
    pg = Page(browser, write_report(data, tmp_path / "mse.html"))
    for k, n in ((0, 0), (5, 17)):
        pg.set_step(k)
        pg.set_sample(n)
        tr = trace(report_model(data, k), data["X"][n:n + 1], data["targets"][n:n + 1], report_loss(data))
        for s in pg.neurons():
            if s["layer"] >= 1:
                assert float(s["delta"]) == pytest.approx(tr.layers[s["layer"] - 1].delta[0, s["neuron"]],
                                                          rel=1e-7, abs=1e-15)
    pg.close()


def test_no_hidden_layer_page(browser, tmp_path):
    from deltaprop.explain.record import report_data

    data = report_data("xor", 0, 30, loss="bce")
    assert data["sizes"] == [2, 1]
    pg = Page(browser, write_report(data, tmp_path / "h0.html"))
    assert len(pg.neurons()) == 3
    assert pg.page.eval_on_selector_all("#depth polyline", "els => els.length") == 2
    pg.close()


def test_depth_view_log_scale_input_scale_and_diagnosis(browser, tmp_path):
    data = _deep_sigmoid_data()
    pg = Page(browser, write_report(data, tmp_path / "deep.html"))
    page = pg.page
    L = len(data["sizes"]) - 1
    assert page.eval_on_selector_all("#depth polyline", "els => els.map(e => +e.dataset.depthLayer)") == \
        list(range(L, -1, -1))
    # the depth numbers are NumPy's (through the engine's trace), at a few recorded steps
    depth = np.asarray(page.evaluate("window.deltapropReport.depth()"))
    assert depth.shape == (len(data["steps"]), L + 1)
    samples = min(len(data["X"]), 256)
    for k in (0, len(data["steps"]) - 1):
        np.testing.assert_allclose(depth[k], _numpy_depth(data, k, samples), rtol=1e-9)
    note = page.text_content("#depth-note")
    assert "mean |δ|" in note and "Vanishing gradients" in note and "sigmoid" in note
    assert page.is_visible("#depth-diagnosis")

    page.check("#backward")

    def shades(layer):
        return [abs(float(v)) for v in page.eval_on_selector_all(
            f"circle[data-layer='{layer}']", "els => els.map(e => e.dataset.shade)")]
    # linear: the first hidden layer is washed out next to the output; the inputs have their own scale
    assert max(shades(1)) < 0.05 and max(shades(L)) == pytest.approx(1.0)
    assert max(shades(0)) == pytest.approx(1.0)
    assert page.is_visible("#input-scale")
    page.check("#logscale")
    assert page.get_attribute("body", "data-scale") == "log"
    assert max(shades(1)) > 0.2
    assert "log scale" in page.text_content("#legend")
    page.uncheck("#logscale")
    assert max(shades(1)) < 0.05
    pg.close()


def test_plateau_hint(browser, tmp_path):
    flat = _deep_sigmoid_data(steps=40, lr=0.05)
    pg = Page(browser, write_report(flat, tmp_path / "flat.html"))
    assert pg.page.is_visible("#plateau-hint")
    text = pg.page.text_content("#plateau-hint")
    assert "stopped falling" in text and "Vanishing gradients" in text
    pg.close()
    falling = config_data("tanh-sigmoid")
    pg = Page(browser, write_report(falling, tmp_path / "falling.html"))
    assert not pg.page.is_visible("#plateau-hint")
    pg.close()


@pytest.mark.parametrize("sizes", [[2, 4, 4, 1], [2, 9, 9, 1], [2, 16, 1], [2, 40, 40, 1]])
def test_neuron_names_never_overlap_circles(browser, tmp_path, sizes):
    X, y = make_dataset("xor", 30, seed=4)
    data = train(sizes, "tanh", "sigmoid", X, y, steps=3, lr=0.1)
    pg = Page(browser, write_report(data, tmp_path / "names.html"))
    boxes = pg.page.evaluate("""() => {
        const r = (e) => { const b = e.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; };
        return {names: [...document.querySelectorAll('.neuron-name')].filter(e => e.getAttribute('display') !== 'none')
                  .map(r), circles: [...document.querySelectorAll('circle[data-layer]')].map(r)}; }""")
    for n in boxes["names"]:
        for c in boxes["circles"]:
            overlap = min(n[2], c[2]) - max(n[0], c[0]) > 0.5 and min(n[3], c[3]) - max(n[1], c[1]) > 0.5
            assert not overlap, (n, c)
    if max(sizes) <= 9:
        assert len(boxes["names"]) == sum(sizes)
    pg.close()


def test_size_budget_thins_steps_and_says_so(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "small.html"
    r = subprocess.run([sys.executable, "-m", "deltaprop", "explain", "--dataset", "moons", "--hidden", "16,16",
                        "--steps", "300", "--max-mb", "1", "--html", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size <= 1_000_000
    assert "size budget of 1 MB" in r.stderr
    page = out.read_text(encoding="utf-8")
    emb = embedded_json(page)
    assert 2 <= len(emb["steps"]) < 300 and emb["steps"][0] == 0 and emb["steps"][-1] == 299
    assert 'id="budget-note"' in page and "size budget of 1 MB" in page
    # the library's own writer keeps a budget too, thinning what was recorded
    data = config_data("tanh-sigmoid", n=40, steps=200)
    full = len(render_report(data).encode())
    path = write_report(data, tmp_path / "thin.html", max_bytes=full // 2)
    assert path.stat().st_size <= full // 2
    emb = embedded_json(path.read_text(encoding="utf-8"))
    assert emb["steps"][-1] == 199 and len(emb["steps"]) < 200 and "of the 200 recorded steps" in emb["note"]


def test_cli_report_options(tmp_path):
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-m", "deltaprop", "explain", *args], capture_output=True, text=True,
                              timeout=600)
    for args, sizes, output in ((["--dataset", "mazur", "--steps", "20"], [2, 2, 2], "sse"),
                                (["--dataset", "xor", "--hidden", "0", "--steps", "20"], [2, 1], "sigmoid"),
                                (["--dataset", "moons", "--loss", "mse", "--hidden", "3", "--steps", "5"], [2, 3, 1], "mse"),
                                (["--dataset", "spirals", "--loss", "ce", "--hidden", "4", "--steps", "5"], [2, 4, 3],
                                 "softmax")):
        out = tmp_path / "r.html"
        r = run(*args, "--html", str(out))
        assert r.returncode == 0, r.stderr
        emb = embedded_json(out.read_text(encoding="utf-8"))
        assert emb["sizes"] == sizes and emb["output"] == output
        assert "|delta| by layer" in r.stdout
    for bad in (["--dataset", "spirals", "--loss", "bce"], ["--dataset", "mazur", "--loss", "ce"],
                ["--hidden", "0,4"], ["--target", "label"], ["--max-mb", "0"]):
        r = run(*bad, "--html", str(tmp_path / "x.html"))
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip(), (bad, r.stderr)


def test_budgeted_64x64_2000_step_report_opens_without_console_errors(browser, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "big.html"
    r = subprocess.run([sys.executable, "-m", "deltaprop", "explain", "--dataset", "moons", "--hidden", "64,64",
                        "--steps", "2000", "--html", str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size <= 25_000_000
    assert "size budget of 25 MB" in r.stderr
    pg = Page(browser, out)
    pg.page.check("#backward")
    pg.page.check("#logscale")
    pg.set_step(0)
    assert len(pg.neurons()) == 2 + 64 + 64 + 1
    assert "size budget of 25 MB" in pg.page.text_content("#budget-note")
    pg.close()


def test_cli_report_on_own_2d_points(tmp_path):
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    labels = np.where(X[:, 0] * X[:, 1] > 0, "same", "diff")
    csv = tmp_path / "pts.csv"
    csv.write_text("u,v,label\n" + "".join(f"{float(a)!r},{float(b)!r},{c}\n" for (a, b), c in zip(X, labels)))
    out = tmp_path / "own.html"
    r = subprocess.run([sys.executable, "-m", "deltaprop", "explain", "--data", str(csv), "--target", "label",
                        "--hidden", "3", "--steps", "10", "--html", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    emb = embedded_json(out.read_text(encoding="utf-8"))
    np.testing.assert_array_equal(np.asarray(emb["X"]), X)
    assert emb["y"] == [0 if c == "diff" else 1 for c in labels]   # classes in sorted order
    assert emb["class_names"] == ["diff", "same"]                   # shown instead of "class 0/1"
    assert emb["sizes"] == [2, 3, 1]
    three = tmp_path / "three.csv"
    three.write_text("a,b,c,label\n1,2,3,x\n2,3,4,y\n")
    r = subprocess.run([sys.executable, "-m", "deltaprop", "explain", "--data", str(three), "--html",
                        str(tmp_path / "x.html")], capture_output=True, text=True, timeout=300)
    # the wrong number of features: a failure in plain words, exit 1 as in deltaprop train (issue 21)
    assert r.returncode == 1 and "has 3 feature columns" in r.stderr and "points in the plane" in r.stderr
    assert "Traceback" not in r.stderr and "report_data" not in r.stderr
    for bad, says in [(tmp_path / "missing.csv", "no such file"), (three, "'nope'")]:  # a file that cannot be read: 1
        r = subprocess.run([sys.executable, "-m", "deltaprop", "explain", "--data", str(bad), "--html",
                            str(tmp_path / "y.html")] + (["--target", "nope"] if bad == three else []),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "y.html").exists()


def test_own_class_names_in_the_legend_and_sample_list(browser, tmp_path):
    from deltaprop.explain.record import report_data
    X = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    data = report_data("xor", [3], 3, "tanh", 0.5, 0, record_every=1)
    data.update(X=X, y=[0, 1, 1, 0], class_names=["cat", "dog"], dataset="pets.csv")
    out = tmp_path / "names.html"
    write_report(data, out)
    p = Page(browser, out)
    legend = p.page.inner_text("#boundary-legend")
    assert "cat" in legend and "dog" in legend and "class 0" not in legend
    options = p.page.eval_on_selector_all("#sample option", "els => els.map(e => e.textContent)")
    assert options[1].endswith("y = 1 (dog)") and options[0].endswith("y = 0 (cat)")
    p.close()
    with pytest.raises(ValueError, match="class_names must list 2 names"):
        write_report(dict(data, class_names=["cat"]), tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()


def test_gelu_page_equals_the_engine(browser, tmp_path):
    # the page computes GELU with the engine's own erfc: every out and delta equals the engine's
    from deltaprop.explain.record import report_data, report_model
    from deltaprop.explain.trace import trace

    data = report_data("moons", [4, 3], 5, "gelu")
    pg = Page(browser, write_report(data, tmp_path / "gelu.html"))
    for k, n in ((0, 0), (4, 11)):
        pg.set_step(k)
        pg.set_sample(n)
        tr = trace(report_model(data, k), data["X"][n:n + 1], data["y"][n:n + 1].reshape(1, 1).astype(float),
                   "bce_logits")
        shown = [s for s in pg.neurons() if s["layer"] >= 1]
        assert len(shown) == 8
        for s in shown:
            layer = tr.layers[s["layer"] - 1]
            out = layer.out if s["layer"] < 3 else 1 / (1 + np.exp(-layer.net))
            # (the page prints %.9g: equal to the engine's to the last printed digit)
            assert float(s["out"]) == pytest.approx(out[0, s["neuron"]], rel=1e-8, abs=1e-15)
            assert float(s["delta"]) == pytest.approx(layer.delta[0, s["neuron"]], rel=2e-8, abs=1e-15)
    pg.page.click("circle[data-layer='1'][data-neuron='2']")
    assert "Φ(net) + net · φ(net)" in pg.page.text_content("#details")
    assert pg.errors == []
    pg.close()


def test_a_learning_rate_too_large_is_the_pages_lesson(browser, tmp_path):
    # moons at lr 10: the loss rises; the page names the learning rate, never the activation
    from deltaprop.explain.record import report_data

    data = report_data("moons", [4, 4], 200, "tanh", lr=10)
    assert data["lesson_kind"] == "lr_too_large"
    pg = Page(browser, write_report(data, tmp_path / "lr.html"))
    lesson = pg.page.text_content("#lesson")
    assert "the learning rate (10) is too large" in lesson and "Lower it" in lesson
    assert "saturating" not in lesson and "ReLU" not in lesson
    assert not pg.page.is_visible("#plateau-hint")
    depth = pg.page.text_content("#depth-note")
    assert "symptom of the learning rate too large" in depth and "ReLU" not in depth
    pg.close()
    # XOR without a hidden layer: not linearly separable, the fix a hidden layer
    data = report_data("xor", [], 2000, "tanh")
    pg = Page(browser, write_report(data, tmp_path / "xor.html"))
    lesson = pg.page.text_content("#lesson")
    assert "XOR is not linearly separable" in lesson and "a hidden layer can" in lesson
    assert not pg.page.is_visible("#plateau-hint")
    pg.close()
