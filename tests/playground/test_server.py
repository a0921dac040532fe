"""The playground's server over real HTTP and WebSockets (aiohttp's client): the token, the Host
and the Origin are checked, refused messages are answered and the server keeps running, and the
command prints its URL and stops cleanly on Ctrl-C."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")

from deltaprop.playground.server import Server, start  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def run(coro_fn):
    """Start a server on a free port, run coro_fn(server, session), stop the server."""
    async def main():
        server = Server()
        runner = await start(server, 0)
        try:
            async with aiohttp.ClientSession() as http:
                return await coro_fn(server, http)
        finally:
            await runner.cleanup()
    return asyncio.run(main())


async def _next(ws, kind, timeout=10.0):
    """The next message of type `kind` (others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data["type"] == kind:
            return data


def test_page_needs_the_token_host_and_origin():
    async def check(server, http):
        base = f"http://127.0.0.1:{server.port}"
        ok = await http.get(f"{base}/?token={server.token}")
        assert ok.status == 200
        body = await ok.text()
        assert "deltaprop playground" in body and "default-src 'none'" in ok.headers["Content-Security-Policy"]
        for url, headers in [(f"{base}/", {}), (f"{base}/?token=wrong", {}), (f"{base}/?token={server.token[:-1]}", {}),
                             (f"{base}/?token={server.token}", {"Origin": "http://evil.example"}),
                             (f"{base}/?token={server.token}", {"Origin": "null"}),
                             (f"{base}/?token={server.token}", {"Host": "evil.example"}),
                             (f"{base}/static/../../etc/passwd?token=x", {}),
                             (f"{base}/favicon.ico", {})]:
            r = await http.get(url, headers=headers)
            assert r.status == 403, (url, headers)
            assert "403" in await r.text()
        r = await http.get(f"{base}/nothing?token={server.token}")
        assert r.status == 404
        assert server.url == f"{base}/?token={server.token}"
    run(check)


def test_websocket_handshake_needs_the_token_and_origin():
    async def check(server, http):
        base = f"ws://127.0.0.1:{server.port}/ws"
        for url, headers in [(base, {}), (f"{base}?token=nope", {}),
                             (f"{base}?token={server.token}", {"Origin": "http://evil.example"}),
                             (f"{base}?token={server.token}", {"Origin": f"http://127.0.0.1:{server.port + 1}"})]:
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await http.ws_connect(url, headers=headers)
            assert err.value.status == 403
        ws = await http.ws_connect(f"{base}?token={server.token}", headers={"Origin": f"http://127.0.0.1:{server.port}"})
        data = await _next(ws, "data")
        frame = await _next(ws, "frame")
        assert len(data["train"]["X"]) == 250 and frame["step"] == 0
        await ws.close()
    run(check)


def test_refused_messages_get_an_error_and_the_socket_keeps_working():
    async def check(server, http):
        ws = await http.ws_connect(f"ws://127.0.0.1:{server.port}/ws?token={server.token}")
        await _next(ws, "frame")
        hostile = ["{", "[]", '{"type": "rm -rf"}', '{"type": "set", "changes": {"hidden": [1000000, 1000000]}}',
                   '{"type": "set", "changes": {"points": 1e12}}', '{"type": "set", "id": 4, "changes": {"save_to": "/tmp/x"}}',
                   json.dumps({"type": "set", "changes": {"dataset": "x" * 20000}}), '{"type": "select", "layer": 9, "neuron": 0}']
        for text in hostile:
            await ws.send_str(text)
            err = await _next(ws, "error")
            assert err["message"]
        await ws.send_bytes(b"\x00\x01")
        assert "binary" in (await _next(ws, "error"))["message"]
        await ws.send_str(json.dumps({"type": "set", "id": 9, "changes": {"learning_rate": 0.3, "hidden": [3]}}))
        frame = await _next(ws, "frame")
        assert frame["rev"] == 9 and frame["config"]["learning_rate"] == 0.3 and frame["config"]["hidden"] == [3]
        await ws.send_str('{"type": "step"}')
        assert (await _next(ws, "frame"))["step"] == 1
        # above aiohttp's limit the socket is closed; the server still answers a new one
        await ws.send_str("x" * (2 << 20))
        msg = await ws.receive(timeout=10)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        ws2 = await http.ws_connect(f"ws://127.0.0.1:{server.port}/ws?token={server.token}")
        assert (await _next(ws2, "frame"))["step"] == 0
        await ws2.close()
    run(check)


def test_play_streams_frames_paced_by_acks_and_a_knob_lands_quickly():
    async def check(server, http):
        ws = await http.ws_connect(f"ws://127.0.0.1:{server.port}/ws?token={server.token}")
        await _next(ws, "frame")
        await ws.send_str('{"type": "play"}')
        steps = []
        for _ in range(10):
            f = await _next(ws, "frame")
            steps.append(f["step"])
            await ws.send_str('{"type": "ack"}')
        assert steps[-1] >= 8 and steps == sorted(steps)
        t0 = time.perf_counter()
        await ws.send_str('{"type": "set", "id": 77, "changes": {"learning_rate": 1}}')
        while True:
            f = await _next(ws, "frame")
            await ws.send_str('{"type": "ack"}')
            if f["rev"] == 77:
                break
        assert f["config"]["learning_rate"] == 1.0 and time.perf_counter() - t0 < 2.0
        await ws.send_str('{"type": "save"}')
        rep = await _next(ws, "report")
        assert rep["html"].startswith("<!DOCTYPE html>") and rep["filename"] == "deltaprop-circles.html"
        await ws.close()
    run(check)


def _start_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "deltaprop", "playground", "--no-browser", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    return proc, line


def test_command_prints_the_url_and_stops_cleanly_on_ctrl_c():
    proc, line = _start_cli()
    try:
        assert line.startswith("deltaprop playground: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        assert "?token=" in url and len(url.split("token=")[1]) >= 24

        async def fetch():
            async with aiohttp.ClientSession() as http:
                ok = await http.get(url)
                bad = await http.get(url.split("?")[0])
                return ok.status, bad.status
        assert asyncio.run(fetch()) == (200, 403)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err


def test_command_stops_cleanly_on_sigterm_too():
    proc, line = _start_cli()
    assert "http://127.0.0.1:" in line
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0 and "Traceback" not in err and "stopped" in err


def test_command_usage_errors():
    r = subprocess.run([sys.executable, "-m", "deltaprop", "playground", "--port", "http"], capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=60)
    assert r.returncode == 2 and "invalid port 'http'" in r.stderr and "Traceback" not in r.stderr
    proc, line = _start_cli()
    try:
        port = line.split("127.0.0.1:")[1].split("/")[0]
        r = subprocess.run([sys.executable, "-m", "deltaprop", "playground", "--no-browser", "--port", port],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=60)
        assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_without_aiohttp_the_command_says_what_to_install(monkeypatch, capsys):
    from deltaprop.cli import main

    monkeypatch.setitem(sys.modules, "aiohttp", None)     # as if it were not installed
    assert main(["playground", "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert "needs aiohttp" in err and "pip install 'deltaprop[playground]'" in err
