"""The `playground` case: `deltaprop playground` driven over its WebSocket by a headless client.

`run()` (called by the deltaprop worker) starts the server in a process of its own
(`python -m deltaprop playground --no-browser`), connects as the page does, sets a 2-8-8-1 tanh
network on xor with 500 training points (and 500 test points), presses play and, like the page,
parses each frame and acknowledges it (the server keeps at most three frames unacknowledged, so the
rate counts steps that reached the client, not steps queued). One frame is one training step,
the engine's trace of the next step, the plane's heatmaps and boundary, and the losses. Then,
while it plays, it changes the learning rate KNOBS times and times each change until a frame
carrying it arrives. The value is seconds per frame; extras: frames per second and the knob
latencies (median, max), in milliseconds. Where Playwright and Chromium are installed, the same
network is also played in the real page for SECONDS and the frames it drew (each one drawn before
it is acknowledged) are counted: `browser_frames_per_s`, steps and redraws together.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from statistics import median

SECONDS, KNOBS = 4.0, 15


async def _drive(url: str) -> dict:
    import aiohttp

    ws_url = url.replace("http://", "ws://").replace("/?token=", "/ws?token=")
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url, max_msg_size=1 << 26)

        async def frame() -> dict:
            while True:
                msg = await ws.receive(timeout=30)
                data = json.loads(msg.data)
                if data["type"] == "error":
                    raise RuntimeError(f"playground: {data['message']}")
                if data["type"] == "frame":
                    await ws.send_str('{"type": "ack"}')
                    return data

        await frame()
        await ws.send_str(json.dumps({"type": "set", "id": 1, "changes": {
            "dataset": "xor", "hidden": [8, 8], "points": 1000, "train_ratio": 0.5, "activation": "tanh",
            "batch_size": 10, "speed": 1}}))
        while (await frame())["rev"] != 1:
            pass
        await ws.send_str('{"type": "play", "id": 2}')
        for _ in range(10):                                  # warm up
            f = await frame()
        step0, t0, frames = f["step"], time.perf_counter(), 0
        while time.perf_counter() - t0 < SECONDS:
            f = await frame()
            frames += 1
        elapsed = time.perf_counter() - t0
        steps = f["step"] - step0
        latencies = []
        for k in range(KNOBS):
            rev = 100 + k
            sent = time.perf_counter()
            await ws.send_str(json.dumps({"type": "set", "id": rev, "changes": {"learning_rate": (0.03, 0.1)[k % 2]}}))
            while (await frame())["rev"] != rev:
                pass
            latencies.append(time.perf_counter() - sent)
            for _ in range(3):
                await frame()
        await ws.close()
    return {"value": elapsed / frames, "frames_per_s": frames / elapsed, "steps_per_frame": steps / frames,
            "knob_ms_median": 1e3 * median(latencies), "knob_ms_max": 1e3 * max(latencies),
            "train_points": 500, "network": "2-8-8-1"}


def _browser(url: str) -> float | None:
    """Frames per second drawn by the page in headless Chromium (None without Playwright/Chromium)."""
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    path = next((p for p in (os.environ.get("DELTAPROP_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"))
                 if p and os.path.exists(p)), None)
    if path is None:
        return None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.wait_for_selector("body[data-ready]", timeout=30000)
            page.evaluate("() => window.playground.ws.send(JSON.stringify({type: 'set', id: 900, changes: "
                          "{dataset: 'xor', hidden: [8, 8], points: 1000, train_ratio: 0.5, batch_size: 10, speed: 1}}))")
            page.wait_for_function("() => Number(document.body.dataset.rev) >= 900", timeout=30000)
            page.click("#play")
            page.wait_for_function("() => Number(document.body.dataset.step) >= 10", timeout=30000)
            f0, t0 = page.evaluate("window.playground.frames"), time.perf_counter()
            time.sleep(SECONDS)
            return (page.evaluate("window.playground.frames") - f0) / (time.perf_counter() - t0)
        finally:
            browser.close()


def run() -> dict:
    """Start the server process, drive it, stop it with Ctrl-C (SIGINT)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "deltaprop", "playground", "--no-browser"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if "http://" not in line:
            raise RuntimeError(f"deltaprop playground did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        url = line.split(": ", 1)[1].strip()
        result = asyncio.run(_drive(url))
        fps = _browser(url)
        if fps is not None:
            result["browser_frames_per_s"] = fps
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
