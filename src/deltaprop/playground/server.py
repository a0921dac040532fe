"""The playground's HTTP and WebSocket side (aiohttp): one page, one socket per page, a token.

Safe by default, as Jupyter is: the server listens on 127.0.0.1 only; the URL carries a
random token, and any request or WebSocket handshake without it, with a Host other than this
server's, or with an Origin other than this server's (a web page elsewhere trying to reach
localhost) is answered 403. The page is one HTML document with its script and style inline
(under a nonce-based Content-Security-Policy); it fetches nothing else.

Each WebSocket gets its own `Session`. The server sends "data" (the points) and "frame"
messages (session.Session.frame); the page answers each frame with {"type": "ack"} once drawn,
and the server keeps at most CREDITS frames unanswered, so a slow page slows the training
instead of queueing frames. Messages from the page are checked by session.parse_message; a
refused one is answered {"type": "error", "message": ...} and the socket stays open.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import socket
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from .session import MAX_MESSAGE_BYTES, MessageError, Session, parse_message

__all__ = ["make_app", "Server", "CREDITS"]

CREDITS = 3            # frames sent but not yet acknowledged by the page
FRAME_BUDGET_S = 0.05  # a frame trains `speed` steps or for this long, whichever ends first
WS_LIMIT = 1 << 20     # a message above this closes the socket (aiohttp); above MAX_MESSAGE_BYTES: refused
REPORT_BYTES = 8_000_000   # "Save this run": the report thinned to this size


def _asset(name: str) -> str:
    try:
        return resources.files(__package__ or "deltaprop.playground").joinpath("static", name).read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, TypeError):
        return (Path(__file__).parent / "static" / name).read_text("utf-8")


def _message_id(text: Any) -> int | None:
    """The "id" of a refused message when it has a readable one (the page matches the error to it)."""
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_BYTES:
        return None
    try:
        rev = json.loads(text).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return rev if isinstance(rev, int) and not isinstance(rev, bool) else None


class Connection:
    """One page's socket: its session, the frame pump and the message handler."""

    def __init__(self, ws: web.WebSocketResponse, session: Session):
        self.ws, self.session = ws, session
        self.credits = CREDITS
        self.wake = asyncio.Event()

    async def send(self, obj: dict) -> None:
        """Send one message as JSON text (nothing once the socket is closed)."""
        if not self.ws.closed:
            try:
                await self.ws.send_str(json.dumps(obj, allow_nan=False))
            except ConnectionResetError:   # the page went away meanwhile: its socket's loop ends
                pass

    async def send_frame(self) -> None:
        """Send the session's frame now."""
        await self.send(self.session.frame())

    async def error(self, message: str, rev: int | None = None) -> None:
        """Tell the page a message was refused, and why."""
        await self.send({"type": "error", "message": message, "rev": rev})

    async def pump(self) -> None:
        """While playing: `speed` steps, one frame, as fast as the page acknowledges frames."""
        s = self.session
        while not self.ws.closed:
            if not (s.playing and self.credits > 0):
                self.wake.clear()
                await self.wake.wait()
                continue
            try:
                s.advance(s.config.speed, FRAME_BUDGET_S)
            except Exception as exc:  # noqa: BLE001 (a bug must not end the page's session silently)
                s.playing = False
                await self.error(f"training stopped: {type(exc).__name__}: {exc}"[:300])
            self.credits -= 1
            await self.send_frame()
            await asyncio.sleep(0)      # let the page's messages in between two frames

    async def handle(self, text: Any) -> None:
        """Check and apply one message from the page; a refused one is answered with an error."""
        s = self.session
        try:
            msg = parse_message(text)
            kind = msg["type"]
            if kind == "ack":
                self.credits = min(CREDITS, self.credits + 1)
                self.wake.set()
                return
            if kind == "set":
                before = s.data_version
                s.apply(msg["changes"])
                if s.data_version != before:
                    await self.send(s.data_message())
            elif kind == "play":
                s.playing = True
            elif kind == "pause":
                s.playing = False
            elif kind == "step":
                s.playing = False
                s.advance(1)
            elif kind == "reset":
                s.reset()
            elif kind == "select":
                s.select(msg["layer"], msg["neuron"], msg.get("sample"))
            elif kind == "save":
                from deltaprop.explain import Report

                data = s.report_data()      # the recorded run as it is now (the pump may go on)
                html = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: Report(data, max_bytes=REPORT_BYTES).html)
                await self.send({"type": "report", "html": html, "filename": f"deltaprop-{s.config.dataset}.html",
                                 "rev": msg.get("id")})
                return
            if "id" in msg:
                s.rev = msg["id"]
            if s.playing:
                self.wake.set()
            await self.send_frame()    # the change is on the page now, not at the pump's next frame
        except MessageError as exc:
            await self.error(str(exc), _message_id(text))
        except Exception as exc:  # noqa: BLE001 (a bug answers this message; the server keeps running)
            await self.error(f"could not do that: {type(exc).__name__}: {exc}"[:300], _message_id(text))

    async def run(self) -> None:
        """Serve the socket until it closes: the points, a first frame, then the messages."""
        pump = asyncio.create_task(self.pump())
        try:
            await self.send(self.session.data_message())
            await self.send_frame()
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self.handle(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self.error("binary messages are not accepted: send JSON text")
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            pump.cancel()


class Server:
    """The app's settings: the token, the port, the open sockets."""

    def __init__(self, token: str | None = None):
        self.token = token or secrets.token_urlsafe(24)
        self.port = 0
        self.sockets: set[web.WebSocketResponse] = set()

    @property
    def url(self) -> str:
        """The page's address, token included (what the command prints)."""
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def allowed_origins(self) -> set[str]:
        """The Origin headers accepted: this server's own, by address or as localhost."""
        return {f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"}

    def refusal(self, request: web.Request) -> str | None:
        """Why a request is refused (None: allowed): the token, the Host and the Origin."""
        token = request.query.get("token", "")
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.token.encode()):
            return "missing or wrong token: open the URL that 'deltaprop playground' printed"
        host = request.headers.get("Host", "")
        if host not in {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}:
            return f"wrong Host {host[:60]!r}"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins():
            return f"cross-origin request from {origin[:60]!r} refused"
        return None


def make_app(server: Server) -> web.Application:
    """The aiohttp application: GET / (the page) and GET /ws (the socket), both behind the token."""
    page = _asset("index.html").replace("/*CSS*/", _asset("playground.css"))
    script = _asset("playground.js")

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        why = server.refusal(request)
        if why is not None:
            return web.Response(status=403, text=f"403 Forbidden: {why}\n")
        return await handler(request)

    async def index(request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        body = page.replace("NONCE", nonce).replace("/*JS*/", script)
        csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src data: blob:; "
               f"connect-src ws://127.0.0.1:{server.port} ws://localhost:{server.port}; base-uri 'none'; "
               "form-action 'none'; frame-ancestors 'none'")
        return web.Response(text=body, content_type="text/html", headers={
            "Content-Security-Policy": csp, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"})

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_LIMIT, compress=False)
        await ws.prepare(request)
        server.sockets.add(ws)
        try:
            await Connection(ws, Session()).run()
        finally:
            server.sockets.discard(ws)
        return ws

    async def close_sockets(app: web.Application) -> None:
        for ws in list(server.sockets):
            await ws.close(code=1001, message=b"server stopped")

    app = web.Application(middlewares=[guard], client_max_size=MAX_MESSAGE_BYTES)
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.on_shutdown.append(close_sockets)
    return app


async def start(server: Server, port: int = 0) -> web.AppRunner:
    """Listen on 127.0.0.1:port (0: a free port); server.port is the port taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    server.port = sock.getsockname()[1]
    runner = web.AppRunner(make_app(server), handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
