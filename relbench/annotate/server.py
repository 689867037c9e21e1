"""The local annotation server (Starlette + uvicorn): one page per item, answers fsynced to disk.

Security model: it binds to 127.0.0.1 unless told otherwise and, on any loopback address, also
checks the Host header (no DNS rebinding); every form carries a per-process token (no cross-site
posts); a form body is read with a cap of a few KB (any web page open in the annotator's browser
can post here) and a malformed one is a 400; an item id from a request is only ever looked up in
the plan, never joined into a path; an answer is taken only for an item this process served and
nobody has answered yet (the process holds its annotator's lock, so no other server or import
writes that annotator's answers); pages load nothing but their own same-origin stylesheet, script
and images, under a strict Content-Security-Policy; images are sent without Last-Modified or ETag
(file times would group images by the generator that wrote them).
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from relbench.annotate.guide import guide_for
from relbench.annotate.plan import Plan
from relbench.results.answers import (
    Undo, annotator_answers, annotator_lock, answer_for, answers_path, append_event, now,
)

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
STATIC = {"annotate.css": "text/css; charset=utf-8", "keys.js": "text/javascript; charset=utf-8"}
FORM_BYTES = 4096  # the page's forms are a token, an item id and a choice: well under 200 bytes
FORM_FIELDS = 8
#: a form whose token is not this process's: the page came from an earlier server (restarted
#: since) or another site; the annotator gets the current page back, not a bare refusal
STALE = ("not saved: this page came from before the server restarted (or from elsewhere); "
         "here is the current item, please answer it again")


def _loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1, localhost): a browser on it may
    be steered there by a rebinding DNS name, so the Host header is checked."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def templates():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)


class Session:
    """One annotator's progress through the plan, rebuilt from the answer files at start."""

    def __init__(self, plan: Plan, annotator: str):
        self.plan, self.annotator = plan, annotator
        self.token = secrets.token_urlsafe(24)
        self.served: set[str] = set()
        self.answered: dict[str, object] = {}  # item id -> Answer, answer order kept
        for a in annotator_answers(plan.run_dirs, annotator):
            if a.item in plan.by_id:
                self.answered.pop(a.item, None)
                self.answered[a.item] = a

    def next_item(self):
        return next((it for it in self.plan.items if it.id not in self.answered), None)

    def answer(self, item_id: str, choice: int) -> str | None:
        """None when stored, else why not (one line)."""
        item = self.plan.by_id.get(item_id)
        if item is None or item_id not in self.served:
            return "this server did not show that item"
        if item_id in self.answered:
            return "that item is already answered (undo it first)"
        a = answer_for(self.plan, item, self.annotator, choice)
        append_event(answers_path(self.plan.run_dirs[item.run_dir], self.annotator), a)
        self.answered[item_id] = a
        return None

    def undo(self) -> str | None:
        if not self.answered:
            return "nothing to undo"
        item_id = next(reversed(self.answered))
        item = self.plan.by_id[item_id]
        append_event(answers_path(self.plan.run_dirs[item.run_dir], self.annotator),
                     Undo(annotator=self.annotator, item=item_id, time=now()))
        del self.answered[item_id]
        return None


def _secure_headers(app):
    async def wrapped(scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + HEADERS
            await send(message)
        await app(scope, receive, send_with_headers)
    return wrapped


async def _form(request) -> dict[str, str]:
    """The urlencoded form, read with a cap: beyond FORM_BYTES a 413 before more is read, a
    body that is not a small form a 400."""
    from starlette.exceptions import HTTPException

    declared = request.headers.get("content-length", "")
    too_big = HTTPException(413, f"refused: a form of this page is at most {FORM_BYTES} bytes")
    if declared.isdigit() and int(declared) > FORM_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES:
            raise too_big
    bad = HTTPException(400, f"refused: not a form of this page (at most {FORM_FIELDS} fields, ASCII values)")
    # Starlette's urlencoded parser, fed the capped body: request.form() would read the stream
    # itself, capping each field but not the body (a chunked upload of many fields is unbounded)
    from starlette.formparsers import FormParser, MultiPartException

    async def capped():
        yield bytes(body)

    try:
        parsed = await FormParser(request.headers, capped(), max_fields=FORM_FIELDS, max_part_size=FORM_BYTES).parse()
    except MultiPartException:  # too many fields
        raise bad from None
    form = dict(parsed.multi_items())  # a repeated field: the last one, as parse_qsl into a dict did
    if not all(k.isascii() and isinstance(v, str) and v.isascii() for k, v in form.items()):
        raise bad  # a raw or %-escaped non-ASCII byte: no value this page sends
    return form


def _same_token(form: dict[str, str], token: str) -> bool:
    return secrets.compare_digest(form.get("token", "").encode(), token.encode())  # str would raise on non-ASCII


def create_app(plan: Plan, annotator: str, host: str = "127.0.0.1"):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    plan = plan.for_annotator(annotator)
    session = Session(plan, annotator)
    page = templates().get_template("page.html.j2")
    guide = guide_for(plan)
    static = {name: (HERE / "static" / name).read_bytes() for name in STATIC}

    def render(message: str = "", status: int = 200):
        item = session.next_item()
        if item is not None:
            session.served.add(item.id)
        html = page.render(annotator=annotator, item=item, done=len(session.answered), total=len(plan.items),
                           token=session.token, can_undo=bool(session.answered), message=message, guide=guide)
        return HTMLResponse(html, status_code=status)

    async def index(request):
        return render()

    async def image(request):
        item = plan.by_id.get(request.path_params["item"])
        if item is None or item.id not in session.served:
            return PlainTextResponse("not found", status_code=404)
        return Response(plan.image_path(item).read_bytes(), media_type="image/png")  # no file times

    async def static_file(request):
        name = request.path_params["name"]
        if name not in static:
            return PlainTextResponse("not found", status_code=404)
        return Response(static[name], media_type=STATIC[name])

    async def answer(request):
        form = await _form(request)
        if not _same_token(form, session.token):
            return render(STALE, status=403)
        choice = form.get("choice", "")
        shown = plan.by_id.get(form.get("item", ""))
        top = shown.n_choices if shown is not None else 2
        if not (choice.isdigit() and int(choice) <= top):
            return PlainTextResponse(f"refused: choice must be 0 (can't tell) to {top}", status_code=400)
        why = session.answer(form.get("item", ""), int(choice))
        if why:
            return render(f"not saved: {why}", status=409)
        return RedirectResponse("/", status_code=303)

    async def undo(request):
        form = await _form(request)
        if not _same_token(form, session.token):
            return render(STALE, status=403)
        why = session.undo()
        if why:
            return render(why, status=409)
        return RedirectResponse("/", status_code=303)

    async def no_icon(request):
        return Response(status_code=204)

    routes = [
        Route("/", index), Route("/favicon.ico", no_icon), Route("/image/{item}", image), Route("/static/{name}", static_file),
        Route("/answer", answer, methods=["POST"]), Route("/undo", undo, methods=["POST"]),
    ]
    middleware = []
    if _loopback(host):
        bound = f"[{host.strip('[]')}]" if ":" in host else host
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", bound]))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.session = session
    return _secure_headers(app)


def _check_port(host: str, port: int) -> None:
    import socket

    from relbench.errors import UserError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
            s.bind((host, port))
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or --host") from None


def serve(plan: Plan, annotator: str, host: str = "127.0.0.1", port: int = 8765) -> None:
    import uvicorn

    _check_port(host, port)
    with annotator_lock(plan.run_dirs, annotator, f"relbench annotate --annotator {annotator} (port {port})"):
        app = create_app(plan, annotator, host)  # reads the answers only once it is their one writer
        shown = f"[{host}]" if ":" in host else host
        if not _loopback(host):
            print(f"note: listening on {host}: anyone who can reach this machine can open the page and answer as "
                  f"{annotator}", flush=True)
        dirs = " ".join(str(d) for d in plan.run_dirs)
        print(f"annotating {len(plan.items)} items (plan {plan.id}) as {annotator}: open http://{shown}:{port}/ "
              f"(Ctrl-C stops; answers are saved as you go; then `relbench annotate {dirs} --summarize`)", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
