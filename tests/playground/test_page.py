"""The playground in real headless Chromium (Playwright): it trains, every knob has its effect,
a clicked neuron shows the engine's numbers (dp.explain.trace on the same weights and batch, to
1e-9), two pages train apart, a page without the token or from another origin is refused, and
hostile messages leave the server running. Skips (with the reason) when playwright or Chromium
is missing, except under CI=true, where it fails."""
from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest

pytest.importorskip("aiohttp")

import deltaprop as dp  # noqa: E402

@pytest.fixture(scope="module")
def server():
    """The playground server in a thread of its own (its own event loop); yields its URL."""
    from deltaprop.playground import serve

    urls, box = [], {}

    def run():
        loop = asyncio.new_event_loop()
        box["loop"] = loop
        box["task"] = loop.create_task(serve(0, False, urls.append))
        try:
            loop.run_until_complete(box["task"])
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.time() + 30
    while not urls and time.time() < deadline:
        time.sleep(0.05)
    assert urls, "the server did not start"
    yield urls[0]
    box["loop"].call_soon_threadsafe(box["task"].cancel)
    t.join(10)


class Page:
    def __init__(self, browser, url):
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        self.page = self.context.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready]", timeout=20000)

    def js(self, expr, arg=None):
        return self.page.evaluate(expr, arg)

    def frame(self):
        return self.js("window.playground.frame")

    def rev(self):
        return int(self.js("document.body.dataset.rev"))

    def wait_rev(self, rev):
        """Until the page has drawn a frame that includes the message with this id."""
        self.page.wait_for_function(f"() => Number(document.body.dataset.rev) >= {rev}", timeout=15000)

    def knob(self, selector, value):
        """Set a control as a user would and wait until the server's frame carries it."""
        before = self.js("window.playground.nextId")
        el = self.page.locator(selector)
        if el.evaluate("e => e.tagName") == "SELECT":
            el.select_option(str(value))
        else:
            el.evaluate("(e, v) => { e.value = String(v); e.dispatchEvent(new Event('input', {bubbles: true}));"
                        " e.dispatchEvent(new Event('change', {bubbles: true})); }", value)
        self.wait_rev(before)
        return self.frame()

    def close(self):
        self.context.close()


def _model_from(frame):
    c = frame["config"]
    sizes = [2] + [len(b) for b in frame["biases"]]
    acts = {"tanh": dp.nn.Tanh, "sigmoid": dp.nn.Sigmoid, "relu": dp.nn.ReLU, "leaky_relu": lambda: dp.nn.LeakyReLU(0.01)}
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        mods.append(dp.nn.Linear(a, b, dtype=np.float64))
        if i < len(sizes) - 2:
            mods.append(acts[c["activation"]]())
    if c["loss"] in ("mse", "sse"):
        mods.append(dp.nn.Sigmoid())
    model = dp.nn.Sequential(*mods)
    model.load_state_dict({k: np.array(v, dtype=np.float64) for k, v in frame["rule"]["state"].items()})
    return model


def test_train_click_a_neuron_and_find_the_engines_numbers(browser, server):
    p = Page(browser, server)
    try:
        p.knob("#dataset", "xor")
        p.page.click("#add-layer")                      # 2-4-2-2-1
        p.page.wait_for_function("() => window.playground.frame.config.hidden.length === 3")
        p.page.click("#play")
        p.page.wait_for_function("() => Number(document.body.dataset.step) >= 30", timeout=30000)
        p.page.click("#play")                           # pause
        p.page.wait_for_function("() => window.playground.frame.playing === false")
        p.page.click('.neuron[data-layer="1"][data-neuron="2"]')
        p.page.wait_for_selector("#rule-numbers")
        # the frame the page has drawn and its numbers, read in one go once no frame is in flight (a
        # frame sent before the pause, or the one the click asked for, may still arrive)
        last, snap = None, None
        for _ in range(60):
            p.page.wait_for_timeout(250)
            snap = p.js("""() => ({frame: window.playground.frame, drawn: document.body.dataset.rev,
                shown: Object.fromEntries([...document.querySelectorAll('#rule-numbers td[data-key]')]
                         .map(td => [td.dataset.key, [Number(td.dataset.value), td.textContent]])),
                incoming: [...document.querySelectorAll('#rule-incoming tr')].slice(1).map(tr =>
                           Number(tr.querySelector('td[data-key=grad]').dataset.value))})""")
            rev = snap["frame"]["rev"]
            if str(rev) == snap["drawn"] and rev == last and snap["frame"].get("rule"):
                break
            last = rev
        frame, shown, incoming = snap["frame"], snap["shown"], snap["incoming"]
        rule = frame["rule"]
        assert (rule["layer"], rule["neuron"]) == (0, 2)
        # the same weights and batch, through dp.explain.trace here
        data = p.js("window.playground.data")
        X = np.array(data["train"]["X"], dtype=np.float64)
        y = np.array(data["train"]["y"], dtype=np.float64)
        idx = rule["batch_indices"]
        tr = dp.explain.trace(_model_from(frame), X[idx], y[idx].reshape(-1, 1), loss="bce_logits",
                              lr=frame["config"]["learning_rate"])
        L = tr.layers[0]
        s = rule["sample"]
        for key, want in [("net", L.net[s, 2]), ("out", L.out[s, 2]), ("fprime", L.fprime[s, 2]),
                          ("dout", L.dout[s, 2]), ("delta", L.delta[s, 2]), ("delta_batch_mean", L.delta[:, 2].mean())]:
            assert abs(shown[key][0] - want) <= 1e-9, key
            assert shown[key][1] == dp.explain.numbers.fmt(want, np.float64), key
        W, b = tr.grads[f"{L.key}.weight"], tr.grads[f"{L.key}.bias"]
        assert np.allclose(incoming, [W[2, 0], W[2, 1], b[2]], atol=1e-9, rtol=0)
        assert rule["name"] == L.names[2]
        assert p.page.locator("#rule-panel").inner_text().count(L.names[2]) >= 1
        # another sample of the batch
        p.page.select_option("#rule-sample", "3")
        p.page.wait_for_function("() => window.playground.frame.rule && window.playground.frame.rule.sample === 3"
                                 " && document.body.dataset.rev === String(window.playground.frame.rev)")
        assert abs(float(p.page.locator('#rule-numbers td[data-key=delta]').get_attribute("data-value"))
                   - L.delta[3, 2]) <= 1e-9
        # the depth view is trace's delta_scale
        depth = p.js("() => [...document.querySelectorAll('[data-depth-layer]')].map(e => Number(e.dataset.value))")
        assert np.allclose(depth, [m for _, m, _ in tr.delta_scale], rtol=1e-12, atol=0)
        # Save this run: the explain report of what was trained
        with p.page.expect_download() as dl:
            p.page.click("#save")
        html = open(dl.value.path(), encoding="utf-8").read()
        assert html.startswith("<!DOCTYPE html>") and "deltaprop playground: xor" in html
        assert dl.value.suggested_filename == "deltaprop-xor.html"
        assert not p.errors, p.errors
        assert all(r.startswith(server.split("/?")[0]) or r.startswith(("data:", "blob:")) for r in p.requests)
    finally:
        p.close()


def test_every_knob_has_its_effect(browser, server):
    p = Page(browser, server)
    try:
        f0 = p.frame()
        n_train = len(p.js("window.playground.data.train.y"))
        assert n_train == 250
        f = p.knob("#dataset", "moons")
        assert f["config"]["dataset"] == "moons" and p.js("window.playground.data.dataset") == "moons"
        x0 = p.js("window.playground.data.train.X[0]")
        p.knob("#noise", 0.3)
        assert p.js("window.playground.data.train.X[0]") != x0
        p.knob("#points", 100)
        assert len(p.js("window.playground.data.train.y")) == 50
        p.knob("#train-ratio", 0.8)
        assert len(p.js("window.playground.data.train.y")) == 80
        f = p.knob("#batch-size", 7)
        assert f["batch_size"] == 7
        x0 = p.js("window.playground.data.train.X[0]")
        f = p.knob("#seed", 5)
        assert f["config"]["seed"] == 5 and p.js("window.playground.data.train.X[0]") != x0
        f = p.knob("#activation", "relu")
        assert f["activations"][0] == "relu" and "(relu hidden" in p.page.locator("#arch").inner_text()
        f = p.knob("#loss", "mse")
        assert f["config"]["loss"] == "mse" and "sigmoid output" in p.page.locator("#arch").inner_text()
        assert "batch of 7" in f["delta_note"] and "mean loss" in f["delta_note"]
        f = p.knob("#learning-rate", 0.3)
        assert f["config"]["learning_rate"] == 0.3
        f = p.knob("#regularization", "l2")
        f = p.knob("#reg-rate", 0.01)
        assert (f["config"]["regularization"], f["config"]["reg_rate"]) == ("l2", 0.01)
        p.page.click('.neuron[data-layer="1"][data-neuron="0"]')
        p.page.wait_for_selector("#rule-incoming")
        head = p.page.locator("#rule-incoming tr").first.inner_text()
        assert "+ L2 term" in head and "0.3 × gradient" in head
        # layers and neurons
        n = p.page.locator(".neuron").count()
        p.page.click("#add-layer")
        p.page.wait_for_function(f"() => document.querySelectorAll('.neuron').length > {n}")
        n = p.page.locator(".neuron").count()
        p.page.click('[data-add-neuron="0"]')
        p.page.wait_for_function(f"() => document.querySelectorAll('.neuron').length === {n + 1}")
        p.page.click('[data-remove-neuron="0"]')
        p.page.wait_for_function(f"() => document.querySelectorAll('.neuron').length === {n}")
        p.page.click("#remove-layer")
        p.page.wait_for_function("() => window.playground.frame.config.hidden.length === 2")
        # step, play with a speed, pause, reset
        p.page.click("#step")
        p.page.wait_for_function("() => document.body.dataset.step === '1'")
        p.knob("#speed", 10)
        frames = p.js("window.playground.frames")
        p.page.click("#play")
        p.page.wait_for_function("() => Number(document.body.dataset.step) >= 41")
        p.page.click("#play")
        p.page.wait_for_function("() => window.playground.frame.playing === false")
        # up to 10 steps a frame (fewer when a frame's 50 ms are spent first): well above one
        assert (p.frame()["step"] - 1) / (p.js("window.playground.frames") - frames) >= 2
        p.page.click("#reset")
        p.page.wait_for_function("() => document.body.dataset.step === '0'")
        # colour by deltas / show test data (drawing only)
        box = '.neuron[data-layer="1"][data-neuron="0"]'
        by_out = p.page.locator(box).evaluate("e => e.style.borderColor")
        p.page.select_option("#color-by", "delta")
        assert p.page.locator(box).evaluate("e => e.style.borderColor") != by_out
        before = p.page.locator("#boundary").evaluate("c => c.toDataURL()")
        p.page.check("#show-test")
        assert p.page.locator("#boundary").evaluate("c => c.toDataURL()") != before
        # Mazur's example: the post's network and names
        f = p.knob("#dataset", "mazur")
        assert f["names"] == [["i1", "i2"], ["h1", "h2"], ["o1", "o2"]]
        assert f["config"]["loss"] == "sse" and abs(f["train_loss"] - 0.298371109) < 1e-9
        assert f0["step"] == 0 and not p.errors, p.errors
    finally:
        p.close()


def test_two_pages_train_apart(browser, server):
    a, b = Page(browser, server), Page(browser, server)
    try:
        a.page.click("#step")
        a.page.click("#step")
        a.page.wait_for_function("() => document.body.dataset.step === '2'")
        b.knob("#dataset", "spirals")
        assert b.frame()["step"] == 0 and a.frame()["config"]["dataset"] == "circles"
        b.page.click("#play")
        b.page.wait_for_function("() => Number(document.body.dataset.step) >= 5")
        assert a.frame()["step"] == 2
    finally:
        a.close()
        b.close()


def test_refused_without_token_and_from_another_origin(browser, server):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        r = page.goto(server.split("?")[0])
        assert r.status == 403 and "token" in page.inner_text("body")
        r = page.goto(server.replace("token=", "token=x"))
        assert r.status == 403
        # a page of another origin that knows the token still cannot open the socket
        ws_url = server.replace("http://", "ws://").replace("/?token=", "/ws?token=")
        page.route("http://evil.test/", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<html><body>evil</body></html>"))
        page.goto("http://evil.test/")
        outcome = page.evaluate("""url => new Promise(done => {
            const ws = new WebSocket(url);
            ws.onopen = () => done('open');
            ws.onerror = () => done('refused');
            setTimeout(() => done('timeout'), 10000);
        })""", ws_url)
        assert outcome == "refused"
    finally:
        ctx.close()


def test_hostile_messages_leave_the_server_running(browser, server):
    p = Page(browser, server)
    try:
        for text in ["{garbage", '{"type": "set", "changes": {"hidden": [100000]}}',
                     '{"type": "set", "changes": {"points": 1000000000}}', '{"type": "save", "path": "/etc/passwd"}',
                     '{"type": "set", "changes": {"dataset": "../../x"}}', "[" * 5000]:
            count = p.js("window.playground.errors.length")
            p.js("t => window.playground.ws.send(t)", text)
            p.page.wait_for_function(f"() => window.playground.errors.length === {count + 1}")
            assert p.page.locator("#error").is_visible()
        assert len(p.js("window.playground.errors")) == 6
        assert "1 to 16 neurons" in " ".join(e["message"] for e in p.js("window.playground.errors"))
        # bigger than the socket's limit: the socket closes, the page reconnects to a fresh session
        assert p.js("window.playground.connections") == 1
        p.js("() => window.playground.ws.send('x'.repeat(2 * 1024 * 1024))")
        p.page.wait_for_function("() => window.playground.connections === 2 && window.playground.frame !== null",
                                 timeout=20000)
        assert p.frame()["step"] == 0
        p.page.click("#step")
        p.page.wait_for_function("() => document.body.dataset.step === '1'")
        assert p.page.locator("#error").inner_text()
    finally:
        p.close()


def test_speed_at_least_30_frames_per_second_for_2_8_8_1_on_500_points(browser, server):
    """Steps and redraws in the browser (the benchmark row measures the same over a headless client)."""
    p = Page(browser, server)
    try:
        p.knob("#dataset", "xor")
        rev = p.js("window.playground.nextId")
        p.js("() => window.playground.ws.send(JSON.stringify({type: 'set', id: 999999, changes: "
             "{hidden: [8, 8], points: 1000, train_ratio: 0.5}}))")
        p.wait_rev(999999)
        assert rev < 999999 and len(p.js("window.playground.data.train.y")) == 500
        p.page.click("#play")
        p.page.wait_for_function("() => Number(document.body.dataset.step) >= 10")
        f0, t0 = p.js("window.playground.frames"), time.perf_counter()
        time.sleep(3)
        fps = (p.js("window.playground.frames") - f0) / (time.perf_counter() - t0)
        p.page.click("#play")
        load, cpus = os.getloadavg()[0], os.cpu_count() or 1
        if load > cpus:   # other work holds the CPUs: the figure would measure them (the benchmark row holds it)
            pytest.skip(f"the machine is loaded (load average {load:.1f} on {cpus} CPUs); measured {fps:.1f} frames/s")
        assert fps >= 30, fps
    finally:
        p.close()


def test_the_page_names_a_learning_rate_too_large(browser, server):
    p = Page(browser, server)
    try:
        p.knob("#dataset", "circles")
        p.page.click("#add-layer")
        p.page.wait_for_function("() => window.playground.frame.config.hidden.length === 3")
        p.knob("#learning-rate", 10)
        p.page.click("#play")
        # the text read in the same evaluation that finds it (later frames may name what the
        # large rate led to, e.g. saturated units, instead)
        text = p.page.wait_for_function(
            "() => { const t = document.getElementById('diagnosis').textContent;"
            " return t.includes('too large') ? t : false; }", timeout=60000).json_value()
        p.page.click("#play")
        assert "The loss rose" in text and "learning rate (10) is too large" in text
    finally:
        p.close()
