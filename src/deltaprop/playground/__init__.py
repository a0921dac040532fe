"""`deltaprop playground`: train in the browser, live, on deltaprop's engine.

A local web server (aiohttp, the optional extra `playground`) serves one page; each page gets
its own training session over a WebSocket. Every number the page shows (outputs, deltas, the
decision boundary, gradients, the layer rule of a clicked neuron) is computed by the engine in
this process: session.py is the engine side, server.py the HTTP/WebSocket side, static/ the page.
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, Callable, Sequence

__all__ = ["main", "serve"]


async def serve(port: int = 0, open_browser: bool = True, announce: Callable[[str | None], Any] = print,
                token: str | None = None) -> None:
    """Run the server until cancelled: listen on 127.0.0.1:port (0: a free one), announce(url),
    open the browser unless told not to (announce(None) when none could be opened)."""
    from .server import Server, start

    server = Server(token)
    runner = await start(server, port)
    try:
        announce(server.url)
        if open_browser and not await asyncio.get_running_loop().run_in_executor(None, _open, server.url):
            announce(None)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _open(url: str) -> bool:
    """Open the URL in the desktop's browser; False where there is none (no display on Linux: a
    console browser would take over the terminal the server runs in)."""
    import os
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        return bool(webbrowser.open(url))
    except webbrowser.Error:
        return False


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a whole number from 0 to 65535 "
                                         "(0: a free port)")
    return v


def main(argv: Sequence[str] | None = None) -> int:
    """The `deltaprop playground` command; returns the exit code (Ctrl-C stops it: 0)."""
    parser = argparse.ArgumentParser(
        prog="deltaprop playground",
        description="Train a small network in your browser, live, on deltaprop's engine: every knob of "
                    "TensorFlow Playground, and for any neuron the layer rule with this step's numbers. The "
                    "server listens on 127.0.0.1 only and the URL carries a random token.")
    parser.add_argument("--port", type=_port, default=0, help="the port to listen on (default: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    try:
        import aiohttp  # noqa: F401
    except ModuleNotFoundError:
        print("deltaprop playground: error: the playground needs aiohttp; install it with "
              "pip install 'deltaprop[playground]'", file=sys.stderr)
        return 1

    def announce(url: str | None) -> None:
        if url is None:
            print("(no browser could be opened here: open the URL above in yours)", flush=True)
        else:
            print(f"deltaprop playground: {url}\n(Ctrl-C to stop)", flush=True)

    async def run() -> None:
        task = asyncio.current_task()
        assert task is not None, "run() runs as asyncio.run's task"
        try:   # a plain `kill` (SIGTERM) stops it as cleanly as Ctrl-C
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        except (NotImplementedError, RuntimeError):   # (Windows has no signal handlers in its loops)
            pass
        await serve(args.port, not args.no_browser, announce)

    try:
        asyncio.run(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("deltaprop playground: stopped", file=sys.stderr, flush=True)
        return 0
    except OSError as exc:
        print(f"deltaprop playground: error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    return 0
