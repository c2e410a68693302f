"""The emulator's ASGI app: WeCom's API under /cgi-bin, the control plane under /emulator.

`/cgi-bin/...` answers exactly like WeCom: HTTP 200 and `{"errcode", "errmsg", ...}` even on
errors, errmsg in WeCom's "<text>, hint: [...], from ip: ..., more info at ..." form. Every call
passes, in order: an injected error (if one is queued for the path), the access_token check, the
per (corp, path) rate limit, then the handler.

`/emulator/...` is ours, never WeCom's: plain JSON with HTTP 4xx and `{"detail": ...}` on bad input.
`/scan/contact/{config_id}` and `/scan/group/{config_id}` are what a 联系我 / join-way `qr_code` points
at: GET shows a tiny page with a "scan" button, POST performs the scan and answers the action's JSON.
"""

from __future__ import annotations

import html
import inspect
import json
import secrets
import time
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

from pydantic import ConfigDict, ValidationError, validate_call
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from siyu.wecom.crypto import MsgCrypt
from siyu.wecom.emulator import mass
from siyu.wecom.emulator.actors import ACTIONS, ALIASES, Actors, CallbackSender, CallbackUrlError, action_params
from siyu.wecom.emulator.api import ROUTES, Call, Handler, UploadedFile, issue_oauth_code
from siyu.wecom.emulator.controls import ErrorInjector, RateLimiter, TokenStore, normalize_path
from siyu.wecom.emulator.mass import MassRunner
from siyu.wecom.emulator.mass_api import MASS_ROUTES
from siyu.wecom.emulator.state import REACTION_KINDS, EmulatorError, EmulatorState
from siyu.wecom.emulator.traffic import TrafficRun

ERRTEXT: dict[int, str] = {
    -1: "system busy",
    40001: "invalid secret",
    40013: "invalid corpid",
    40014: "invalid access_token",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48001: "api unauthorized",
}
_LENIENT = ConfigDict(coerce_numbers_to_str=True)
NOT_FOUND_CODES = frozenset({60111, 40096, 84061, 40050, 40068, 60123, 41044, 41047})
API_ROUTES: dict[str, tuple[str, Handler]] = {**ROUTES, **MASS_ROUTES}


def errmsg(errcode: int, text: str, ip: str) -> str:
    hint = f"{int(time.time() * 1000)}{secrets.randbelow(10**9):09d}"
    return (
        f"{text}, hint: [{hint}], from ip: {ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )


def _json(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json; charset=UTF-8")


class Emulator:
    """Everything one running emulator holds: state, actors, and the seams in front of the API."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        callback_url: str | None = None,
        rate_limit_per_minute: int | None = None,
        rate_limit_per_hour: int | None = None,
        background_callbacks: bool = False,
        callback_retry_delay: float = 0.2,
    ) -> None:
        corp = state.corp
        crypt = MsgCrypt(corp.token, corp.encoding_aes_key, corp.corpid)
        self.state = state
        self.sender = CallbackSender(
            crypt,
            corpid=corp.corpid,
            agent_id=str(corp.agent_id),
            url=callback_url,
            retry_delay=callback_retry_delay,
            background=background_callbacks,
        )
        self.actors = Actors(state, self.sender)
        self.tokens = TokenStore(clock=time.time)
        self.limiter = RateLimiter(rate_limit_per_minute, rate_limit_per_hour)
        self.errors = ErrorInjector()
        self.traffic_runs: dict[int, TrafficRun] = {}
        self.mass = MassRunner(state, self.actors)

    def start(self) -> None:
        """Start the background work: the clock that moves mass messages, Moments and reactions along."""
        self.mass.start()

    def close(self) -> None:
        self.mass.stop()
        self.sender.close()

    def set_callback_url(self, url: str | None, *, verify: bool = True) -> None:
        """Save the callback URL; like the admin console, verify it with an echostr GET first."""
        if url and verify:
            self.sender.verify_url(url)
        self.sender.url = url or None

    def corp_json(self) -> dict[str, Any]:
        return {**asdict(self.state.corp), "callback_url": self.sender.url}

    def summary(self) -> dict[str, Any]:
        deliveries = list(self.sender.deliveries)
        return {
            **self.state.counts(),
            "deliveries": len(deliveries),
            "deliveries_failed": sum(1 for d in deliveries if d.status == "failed"),
            "rate_limit_per_minute": self.limiter.per_minute,
            "rate_limit_per_hour": self.limiter.per_hour,
            "injected_errors": self.errors.pending(),
            "contact_ways": len(self.state.contact_ways),
            "join_ways": len(self.state.join_ways),
            "welcome_deliveries": len(self.state.welcome_deliveries),
            "traffic_runs": len(self.traffic_runs),
            "mass_tasks": len(self.state.mass_tasks),
            "moment_tasks": len(self.state.moment_tasks),
            "reactions": len(self.state.reactions),
        }


# --- /cgi-bin ------------------------------------------------------------------------------------


class ApiFailure(Exception):
    def __init__(self, errcode: int, text: str | None = None) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.text = text or ERRTEXT.get(errcode, "error")


def _gettoken(emu: Emulator, query: dict[str, str]) -> dict[str, Any]:
    corpid, secret = query.get("corpid", ""), query.get("corpsecret", "")
    if not corpid:
        raise ApiFailure(41002)
    if corpid != emu.state.corp.corpid:
        raise ApiFailure(40013)
    if not secret:
        raise ApiFailure(41004)
    if secret != emu.state.corp.secret:
        raise ApiFailure(40001)
    if not emu.limiter.allow(corpid, "gettoken"):
        raise ApiFailure(45009)
    token, expires_in = emu.tokens.issue(corpid)
    return {"access_token": token, "expires_in": expires_in}


async def _read_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiFailure(47001) from None
    if not isinstance(body, dict):
        raise ApiFailure(47001)
    return body


async def _read_call(request: Request, query: dict[str, str]) -> Call:
    """A POST's JSON body, or its multipart form (media/upload): files apart, other fields as strings."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return Call(query, await _read_body(request))
    try:
        form = await request.form()
    except Exception:  # python-multipart's errors vary by version; all mean a malformed body
        raise ApiFailure(47001) from None
    body: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read()
            files[key] = UploadedFile(value.filename or "", value.content_type or "application/octet-stream", data)
        else:
            body[key] = value
    return Call(query, body, files)


async def _api_call(emu: Emulator, request: Request, path: str) -> dict[str, Any]:
    injected = emu.errors.take(path)
    if injected is not None:
        raise ApiFailure(injected.errcode, injected.errmsg)
    query = dict(request.query_params)
    if path == "gettoken":
        return _gettoken(emu, query)
    route = API_ROUTES.get(path)
    if route is None:
        raise ApiFailure(48001, f"api not implemented by the siyu emulator: /cgi-bin/{path}")
    method, handler = route
    corpid = emu.tokens.check(query.get("access_token"))
    if request.method != method:
        raise ApiFailure(43001 if method == "GET" else 43002)
    if not emu.limiter.allow(corpid, path):
        raise ApiFailure(45009)
    call = await _read_call(request, query) if method == "POST" else Call(query, {})
    with emu.state.lock:
        return handler(emu.state, call)


def _cgi_endpoint(emu: Emulator) -> Any:
    async def cgi(request: Request) -> Response:
        path = normalize_path(request.path_params["path"])
        ip = request.client.host if request.client else "127.0.0.1"
        try:
            data = await _api_call(emu, request, path)
        except ApiFailure as exc:
            return _json({"errcode": exc.errcode, "errmsg": errmsg(exc.errcode, exc.text, ip)})
        except EmulatorError as exc:
            return _json({"errcode": exc.errcode, "errmsg": errmsg(exc.errcode, exc.message, ip)})
        return _json({"errcode": 0, "errmsg": "ok", **data})

    return cgi


# --- /emulator -----------------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, detail: Any, status: int = 400) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


async def _control_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _run_action(emu: Emulator, name: str, body: dict[str, Any]) -> dict[str, Any]:
    method = getattr(emu.actors, name)
    try:
        result = validate_call(method, config=_LENIENT)(**body)
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise BadRequest(f"invalid parameters for {name}: " + "; ".join(errors), 422) from None
    except EmulatorError as exc:
        raise BadRequest(exc.message, 404 if exc.errcode in NOT_FOUND_CODES else 409) from None
    return result.to_json()


class ControlPlane:
    """The /emulator endpoints: corp credentials, callback URL, test hooks and the actor actions."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def routes(self) -> list[Route]:
        return [
            Route("/emulator/corp", self.corp, methods=["GET"]),
            Route("/emulator/summary", self.summary, methods=["GET"]),
            Route("/emulator/callback", self.callback, methods=["PUT", "POST"]),
            Route("/emulator/tokens/{op:str}", self.tokens, methods=["POST"]),
            Route("/emulator/errors", self.errors, methods=["POST", "DELETE"]),
            Route("/emulator/rate_limit", self.rate_limit, methods=["PUT", "POST"]),
            Route("/emulator/deliveries", self.deliveries, methods=["GET"]),
            Route("/emulator/actions", self.actions, methods=["GET"]),
            Route("/emulator/actions/{name:str}", self.run_action, methods=["POST"]),
            Route("/emulator/welcome_deliveries", self.welcome_deliveries, methods=["GET"]),
            Route("/emulator/media/{media_id:str}", self.media, methods=["GET"]),
            Route("/emulator/traffic", self.traffic, methods=["GET", "POST"]),
            Route("/emulator/traffic/{run_id:int}", self.traffic_run, methods=["GET", "DELETE"]),
            Route("/emulator/mass/settings", self.mass_settings, methods=["GET", "POST"]),
            Route("/emulator/mass/confirm", self.mass_confirm, methods=["POST"]),
            Route("/emulator/mass/tick", self.mass_tick, methods=["POST"]),
            Route("/emulator/mass/tasks", self.mass_tasks, methods=["GET"]),
            Route("/emulator/reactions", self.reactions, methods=["GET"]),
        ]

    async def corp(self, request: Request) -> Response:
        return _json(self.emu.corp_json())

    async def summary(self, request: Request) -> Response:
        return _json(self.emu.summary())

    async def callback(self, request: Request) -> Response:
        """Save (or clear, with null) the callback URL; `verify: false` skips the echostr check."""
        body = await _control_body(request)
        url = body.get("url")
        if url is not None and not isinstance(url, str):
            raise BadRequest("url must be a string or null")
        try:
            await run_in_threadpool(self.emu.set_callback_url, url, verify=bool(body.get("verify", True)))
        except CallbackUrlError as exc:
            raise BadRequest(str(exc)) from None
        return _json(self.emu.corp_json())

    async def tokens(self, request: Request) -> Response:
        """POST /emulator/tokens/expire|revoke with an optional {"token": ...} (default: all tokens)."""
        op = request.path_params["op"]
        if op not in ("expire", "revoke"):
            raise BadRequest("use /emulator/tokens/expire or /emulator/tokens/revoke", 404)
        token = (await _control_body(request)).get("token")
        count = self.emu.tokens.expire(token) if op == "expire" else self.emu.tokens.revoke(token)
        return _json({"changed": count})

    async def errors(self, request: Request) -> Response:
        """POST {path, errcode, times?, errmsg?} queues an error; DELETE clears the queue."""
        if request.method == "DELETE":
            self.emu.errors.clear()
            return _json({"injected_errors": {}})
        body = await _control_body(request)
        try:
            errcode, times = int(body["errcode"]), int(body.get("times", 1))
            self.emu.errors.inject(str(body["path"]), errcode, times, body.get("errmsg"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"expected {{path, errcode, times?, errmsg?}}: {exc!r}") from None
        return _json({"injected_errors": self.emu.errors.pending()})

    async def rate_limit(self, request: Request) -> Response:
        """{per_minute?, per_hour?}; a missing value goes back to WeCom's default."""
        body = await _control_body(request)
        try:
            per_minute, per_hour = (
                int(v) if v is not None else None for v in (body.get("per_minute"), body.get("per_hour"))
            )
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"per_minute and per_hour must be integers: {exc!r}") from None
        self.emu.limiter.configure(per_minute, per_hour)
        return _json({"per_minute": self.emu.limiter.per_minute, "per_hour": self.emu.limiter.per_hour})

    async def deliveries(self, request: Request) -> Response:
        return _json({"deliveries": [d.to_json() for d in self.emu.sender.deliveries]})

    async def actions(self, request: Request) -> Response:
        listing = {name: {"doc": inspect.getdoc(ACTIONS[name]), "params": action_params(name)} for name in ACTIONS}
        return _json({"actions": listing})

    async def run_action(self, request: Request) -> Response:
        name = request.path_params["name"].replace("-", "_")
        name = ALIASES.get(name, name)
        if name not in ACTIONS:
            raise BadRequest(f"unknown action {name!r}; known: {', '.join(sorted(ACTIONS))}", 404)
        body = await _control_body(request)
        # in a thread: the callback receiver may call this emulator back before answering
        return _json(await run_in_threadpool(_run_action, self.emu, name, body))

    async def welcome_deliveries(self, request: Request) -> Response:
        """The welcome messages customers received (accepted send_welcome_msg calls), oldest first."""
        with self.emu.state.lock:
            items = [asdict(d) for d in self.emu.state.welcome_deliveries]
        return _json({"welcome_deliveries": items})

    async def media(self, request: Request) -> Response:
        """The bytes of an uploaded media, as the customer would see them."""
        media = self.emu.state.media.get(request.path_params["media_id"])
        if media is None:
            raise BadRequest("unknown media_id", 404)
        return Response(media.data, media_type=media.content_type)

    async def traffic(self, request: Request) -> Response:
        """POST {config_ids (list or {id: weight}; default every 联系我), scans, per_minute, churn?, churn_after?,
        seed?} starts a background run (202); GET lists the runs with their live reports."""
        if request.method == "GET":
            return _json({"runs": [run.to_json() for run in self.emu.traffic_runs.values()]})
        params = _traffic_params(self.emu, await _control_body(request))
        run_id = max(self.emu.traffic_runs, default=0) + 1
        run = self.emu.traffic_runs[run_id] = TrafficRun(run_id, self.emu.actors, params).start()
        return _json(run.to_json(), 202)

    async def traffic_run(self, request: Request) -> Response:
        """GET one run; DELETE stops it (the scans done so far stay)."""
        run = self.emu.traffic_runs.get(request.path_params["run_id"])
        if run is None:
            raise BadRequest("unknown traffic run", 404)
        if request.method == "DELETE":
            run.stop()
        return _json(run.to_json())

    async def mass_settings(self, request: Request) -> Response:
        """GET the mass-message behaviour; POST changes the fields given (see MassSettings), 422 on a bad value."""
        if request.method == "POST":
            try:
                mass.update_settings(self.emu.state, await _control_body(request))
            except ValueError as exc:
                raise BadRequest(str(exc), 422) from None
        return _json(mass.settings_json(self.emu.state.mass_settings))

    async def mass_confirm(self, request: Request) -> Response:
        """{msgid | moment_id, userid, decline?: false}: the sender sends (publishes) now, or declines."""
        body = await _control_body(request)
        userid, decline = body.get("userid"), body.get("decline", False)
        target = body.get("msgid") or body.get("moment_id")
        if not isinstance(userid, str) or not isinstance(decline, bool) or not target:
            raise BadRequest("expected {msgid | moment_id, userid, decline?}", 422)
        result = await run_in_threadpool(_confirm, self.emu.state, body, userid, decline)
        return _json(result)

    async def mass_tick(self, request: Request) -> Response:
        """Apply what is due now (the background clock does this every 0.25 s); deletion callbacks are sent."""
        return _json(await run_in_threadpool(self.emu.mass.run_due))

    async def mass_tasks(self, request: Request) -> Response:
        """Every mass-message task with its senders' decisions and counts of recipient statuses."""
        with self.emu.state.lock:
            mass.advance(self.emu.state)
            tasks = [mass.task_json(t) for t in self.emu.state.mass_tasks.values()]
        return _json({"tasks": tasks})

    async def reactions(self, request: Request) -> Response:
        """?since=<cursor>&kind=reply|complaint|delete (repeatable)&limit=: reactions after the cursor, oldest first."""
        q = request.query_params
        kinds = q.getlist("kind")
        if any(k not in REACTION_KINDS for k in kinds):
            raise BadRequest(f"kind must be one of {', '.join(REACTION_KINDS)}", 422)
        try:
            since, limit = int(q.get("since") or 0), int(q.get("limit") or 1000)
        except ValueError:
            raise BadRequest("since and limit must be integers", 422) from None
        found, cursor = mass.reactions_since(self.emu.state, since, kinds, max(1, min(limit, 10_000)))
        return _json({"reactions": [asdict(r) for r in found], "next_cursor": cursor})


def _confirm(state: EmulatorState, body: dict[str, Any], userid: str, decline: bool) -> dict[str, Any]:
    try:
        if body.get("msgid"):
            member = mass.confirm(state, str(body["msgid"]), userid, decline=decline)
            return {"msgid": body["msgid"], "userid": userid, "decision": member.decision}
        if body["moment_id"] not in state.moments:
            raise BadRequest(f"unknown moment_id {body['moment_id']}", 404)
        published = mass.confirm_moment(state, str(body["moment_id"]), userid, decline=decline)
        return {"moment_id": body["moment_id"], "userid": userid, "decision": published.decision}
    except EmulatorError as exc:
        raise BadRequest(exc.message, 404 if exc.errcode in NOT_FOUND_CODES else 409) from None


def _traffic_params(emu: Emulator, body: dict[str, Any]) -> dict[str, Any]:
    config_ids = body.get("config_ids") or list(emu.state.contact_ways)
    unknown = [c for c in config_ids if c not in emu.state.contact_ways]
    if unknown:
        raise BadRequest(f"unknown config_ids: {', '.join(map(str, unknown))}", 404)
    if not config_ids:
        raise BadRequest("no 联系我 configs to scan: create one first or pass config_ids", 409)
    churn = body.get("churn", 0.0)
    try:
        return {
            "config_ids": config_ids if isinstance(config_ids, dict) else [str(c) for c in config_ids],
            "scans": int(body["scans"]),
            "per_minute": float(body.get("per_minute", 0)),
            "churn": {str(k): float(v) for k, v in churn.items()} if isinstance(churn, dict) else float(churn),
            "churn_after": float(body.get("churn_after", 0)),
            "seed": int(body.get("seed", 0)),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRequest(f"expected {{scans, per_minute, config_ids?, churn?, churn_after?, seed?}}: {exc!r}") from None


# --- /scan: what a qr_code points at ------------------------------------------------------------

_SCAN_PAGE = """<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{details}</p>
<form method="post"><button type="submit">{button}</button></form></body></html>"""


def _scan_page(emu: Emulator, kind: str, config_id: str) -> Response:
    state = emu.state
    with state.lock:
        if kind == "contact" and config_id in state.contact_ways:
            way = state.contact_ways[config_id]
            title, button = f"联系我 / Contact me: {way.remark or config_id}", "扫码添加 / Scan and add"
            members = ", ".join(state.contact_way_scan_members(way)) or "-"
            details = f"config_id {config_id} · state {way.state or '-'} · {members}"
        elif kind == "group" and config_id in state.join_ways:
            join = state.join_ways[config_id]
            title, button = f"加入群聊 / Join group: {join.remark or config_id}", "扫码入群 / Scan and join"
            names = ", ".join(state.groups[c].name for c in join.chat_id_list if c in state.groups) or "-"
            details = f"config_id {config_id} · state {join.state or '-'} · {names}"
        else:
            return HTMLResponse("<!doctype html><p>二维码已失效 / This code is no longer valid</p>", status_code=404)
    page = _SCAN_PAGE.format(title=html.escape(title), details=html.escape(details), button=html.escape(button))
    return HTMLResponse(page)


async def _scan_body(request: Request) -> dict[str, Any]:
    """JSON or the page's form: optional external_userid / name of the customer who scans."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return await _control_body(request)
    form = await request.form()
    return {k: v for k, v in form.items() if k in ("external_userid", "name") and isinstance(v, str) and v}


def _scan_endpoint(emu: Emulator) -> Any:
    async def scan(request: Request) -> Response:
        kind, config_id = request.path_params["kind"], request.path_params["config_id"]
        if kind not in ("contact", "group"):
            raise BadRequest("unknown code kind", 404)
        if request.method == "GET":
            return _scan_page(emu, kind, config_id)
        body = {**(await _scan_body(request)), "config_id": config_id}
        name = "scan_contact_way" if kind == "contact" else "scan_join_way"
        return _json(await run_in_threadpool(_run_action, emu, name, body))

    return scan


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return _json({"detail": exc.detail}, exc.status)


def _oauth_authorize(emu: Emulator) -> Any:
    """WeCom's OAuth page (open.weixin.qq.com/connect/oauth2/authorize): the member is already signed in to
    WeCom, so it redirects straight back with a code. Emulator extension: `userid` picks the member
    (default: the first employee who has customers)."""

    async def authorize(request: Request) -> Response:
        q = request.query_params
        if q.get("appid") != emu.state.corp.corpid or q.get("response_type") != "code" or not q.get("redirect_uri"):
            return Response("invalid appid, response_type or redirect_uri", status_code=400)
        with emu.state.lock:
            userid = q.get("userid") or next(iter(emu.state.follow_user_ids()), "")
            try:
                code = issue_oauth_code(emu.state, userid)
            except EmulatorError as exc:
                return Response(exc.message, status_code=400)
        target = q["redirect_uri"]
        query = urlencode({"code": code, "state": q.get("state", "")})
        return RedirectResponse(f"{target}{'&' if '?' in target else '?'}{query}", status_code=302)

    return authorize


def create_app(emu: Emulator) -> Starlette:
    routes = [
        Route("/cgi-bin/{path:path}", _cgi_endpoint(emu), methods=["GET", "POST"]),
        Route("/connect/oauth2/authorize", _oauth_authorize(emu), methods=["GET"]),
        Route("/scan/{kind:str}/{config_id:str}", _scan_endpoint(emu), methods=["GET", "POST"]),
        *ControlPlane(emu).routes(),
    ]
    return Starlette(routes=routes, exception_handlers={BadRequest: _bad_request})
