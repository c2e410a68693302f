"""WeCom JS-SDK signatures for the sidebar (wx.config and wx.agentConfig), and the OAuth URL.

WeCom signs a page with sha1("jsapi_ticket=…&noncestr=…&timestamp=…&url=…"), once with the
corp's jsapi ticket (wx.config) and once with the app's agent_config ticket (wx.agentConfig,
which `getCurExternalContact` needs). Tickets live 2 hours and their APIs are rate-limited
(WeCom: 400 a hour per app), so each process caches them until 5 minutes before expiry.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from siyu.corp.models import Corp
from siyu.wecom.client import DEFAULT_BASE_URL, client_for_corp

OAUTH_AUTHORIZE = "https://open.weixin.qq.com/connect/oauth2/authorize"
_tickets: dict[tuple[int, bool], tuple[str, float]] = {}
_lock = threading.Lock()


def signature(ticket: str, nonce: str, timestamp: int, url: str) -> str:
    plain = f"jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(plain.encode()).hexdigest()


def ticket(corp: Corp, *, agent: bool) -> str:
    key = (corp.corp_id, agent)
    with _lock:
        cached = _tickets.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
    with client_for_corp(corp) as client:
        value, expires_in = client.get_jsapi_ticket(agent=agent)
    with _lock:
        _tickets[key] = (value, time.monotonic() + max(expires_in - 300, 60))
    return value


@dataclass(frozen=True, slots=True)
class JsConfig:
    corpid: str
    agentid: str
    timestamp: int
    nonce: str
    corp_signature: str
    agent_signature: str


def js_config(corp: Corp, url: str) -> JsConfig:
    """Everything the page needs for wx.config + wx.agentConfig on `url` (without its #fragment)."""
    url = url.split("#", 1)[0]
    nonce, timestamp = secrets.token_hex(8), int(time.time())
    return JsConfig(
        corpid=corp.wecom_corpid,
        agentid=corp.agent_id,
        timestamp=timestamp,
        nonce=nonce,
        corp_signature=signature(ticket(corp, agent=False), nonce, timestamp, url),
        agent_signature=signature(ticket(corp, agent=True), nonce, timestamp, url),
    )


def oauth_url(corp: Corp, *, redirect_uri: str, state: str) -> str:
    """WeCom's silent OAuth (snsapi_base). A corp on the emulator signs in on the emulator's own page."""
    base = corp.api_base_url.rstrip("/")
    authorize = OAUTH_AUTHORIZE if base in ("", DEFAULT_BASE_URL) else f"{base}/connect/oauth2/authorize"
    query = urlencode(
        {"appid": corp.wecom_corpid, "redirect_uri": redirect_uri, "response_type": "code", "scope": "snsapi_base"}
        | {"state": state, "agentid": corp.agent_id}
    )
    return f"{authorize}?{query}#wechat_redirect"
