"""Rendering console pages: Jinja2 with the user's language, CSRF token and navigation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

import siyu
from siyu.accounts.access import Actor, can
from siyu.console.i18n import LANGUAGES, language_of, translator

TEMPLATES = Path(__file__).parent / "templates"

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Navigation by domain: (path, label msgid, object type that must be readable — or a tuple: any one of them).
NAV: list[tuple[str, str, str | tuple[str, ...]]] = [
    ("/", "Dashboard", "dashboard"),
    ("/customers", "Customers", "customer"),
    ("/employees", "Employees", "employee"),
    ("/tags", "Tags", "tag"),
    ("/groups", "Groups", "group_chat"),
    ("/channels", "Channel codes", "channel"),
    ("/group-codes", "Group codes", "channel"),
    ("/welcome", "Welcome messages", "channel"),
    ("/materials", "Materials", "channel"),
    ("/funnels", "Channel funnels", "channel"),
    ("/segments", "Segments", "segment"),
    ("/broadcasts", "Broadcasts", ("broadcast", "personal_broadcast")),
    ("/moments", "Moments", "broadcast"),
    ("/compliance/budget", "Harassment budget", "compliance"),
    ("/compliance/policy", "Reach policy", "compliance"),
    ("/settings", "Settings", "corp"),
    ("/audit", "Audit log", "audit_log"),
    ("/users", "Users", "user"),
]


def _readable(actor: Actor, object_types: str | tuple[str, ...]) -> bool:
    types = (object_types,) if isinstance(object_types, str) else object_types
    return any(can(actor, t, "read") for t in types)


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    actor: Actor | None = None,
    csrf_token: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    lang = language_of(request)
    ctx = {
        "request": request,
        "_": translator(lang),
        "lang": lang,
        "languages": LANGUAGES,
        "actor": actor,
        "csrf_token": csrf_token,
        "nav": [item for item in NAV if actor is not None and _readable(actor, item[2])],
        "path": request.url.path,
        "version": siyu.__version__,
        **(context or {}),
    }
    return HTMLResponse(env.get_template(template).render(ctx), status_code=status_code)
