"""`siyu emulator`: serve an offline WeCom, and make its simulated people act.

siyu emulator --port 8010 --employees 50 --customers 20000 --seed 42 --callback-url URL
siyu emulator act add_customer --url http://127.0.0.1:8010 -p userid=ZhangWei -p state=store_sh_01
siyu emulator act --url http://127.0.0.1:8010          (lists the actions and their parameters)
siyu emulator traffic --url http://127.0.0.1:8010 --scans 200 --per-minute 60 --churn 0.1 --config-id ID[=WEIGHT]
"""

from __future__ import annotations

import json
import os
import time
from typing import Annotated, Any

import httpx
import typer

emulator_app = typer.Typer(
    help="An offline WeCom: its HTTP API, a seeded corp, and simulated customers and staff.",
    invoke_without_command=True,
    no_args_is_help=False,
)
DEFAULT_URL = os.environ.get("SIYU_EMULATOR_URL", "http://127.0.0.1:8010")


@emulator_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8010,
    employees: Annotated[int, typer.Option(help="Employees in the generated corp")] = 20,
    customers: Annotated[int, typer.Option(help="Customers in the generated corp")] = 1000,
    seed: Annotated[int, typer.Option(help="Same seed, same corp (and the same credentials)")] = 0,
    callback_url: Annotated[str | None, typer.Option(help="Where to POST encrypted callbacks")] = None,
    verify_callback: Annotated[bool, typer.Option(help="Run the echostr check on --callback-url first")] = False,
    rate_limit_per_minute: Annotated[int | None, typer.Option(help="Per (corp, API) limit; WeCom: 10000")] = None,
    rate_limit_per_hour: Annotated[int | None, typer.Option(help="Per (corp, API) limit; WeCom: 150000")] = None,
    public_url: Annotated[
        str | None, typer.Option(help="Base URL customers reach the emulator at (qr_code links); default host:port")
    ] = None,
) -> None:
    """Serve the emulator in the foreground (the default command), printing the corp credentials."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from siyu.wecom.emulator.actors import CallbackUrlError
    from siyu.wecom.emulator.app import Emulator, create_app
    from siyu.wecom.emulator.state import build_state

    state = build_state(seed=seed, employees=employees, customers=customers)
    state.public_url = (public_url or f"http://{host}:{port}").rstrip("/")
    emulator = Emulator(state, rate_limit_per_minute=rate_limit_per_minute, rate_limit_per_hour=rate_limit_per_hour)
    try:
        emulator.set_callback_url(callback_url, verify=verify_callback)
    except CallbackUrlError as exc:
        raise typer.BadParameter(str(exc), param_hint="--callback-url") from None
    _print_credentials(emulator.corp_json(), f"http://{host}:{port}", state.counts())
    emulator.start()
    uvicorn.run(create_app(emulator), host=host, port=port, log_level="warning", access_log=False)


def _print_credentials(corp: dict[str, Any], base_url: str, counts: dict[str, int]) -> None:
    typer.echo(f"siyu WeCom emulator on {base_url}  (API: {base_url}/cgi-bin/…, control: {base_url}/emulator/…)")
    for key in ("corp_name", "corpid", "secret", "token", "encoding_aes_key", "agent_id", "callback_url"):
        typer.echo(f"  {key:<17} {corp[key]}")
    typer.echo("  " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def _parse_params(params: list[str], raw_json: str | None) -> dict[str, Any]:
    """-p key=value pairs (values read as JSON when they parse: 5, true, ["a","b"]) over --json."""
    body: dict[str, Any] = {}
    if raw_json:
        try:
            body = json.loads(raw_json)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
        if not isinstance(body, dict):
            raise typer.BadParameter("must be a JSON object", param_hint="--json")
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="-p")
        try:
            body[key] = json.loads(value)
        except ValueError:
            body[key] = value
    return body


def _request(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        r = httpx.request(method, url, json=body, timeout=60)
    except httpx.HTTPError as exc:
        typer.echo(f"error: the emulator at {url} is unreachable ({type(exc).__name__}: {exc})", err=True)
        raise typer.Exit(2) from None
    try:
        data: dict[str, Any] = r.json()
    except ValueError:
        data = {"detail": r.text}
    if r.status_code >= 400:
        typer.echo(f"error: HTTP {r.status_code}: {data.get('detail', data)}", err=True)
        raise typer.Exit(1)
    return data


def _print_actions(listing: dict[str, Any]) -> None:
    for name, info in sorted(listing.items()):
        params = " ".join(
            f"{p['name']}" if p["required"] else f"[{p['name']}={json.dumps(p.get('default'), ensure_ascii=False)}]"
            for p in info["params"]
        )
        summary = (info["doc"] or "").splitlines()[0] if info["doc"] else ""
        typer.echo(f"{name} {params}\n    {summary}")


@emulator_app.command("act")
def act(
    action: Annotated[str | None, typer.Argument(help="The action, e.g. add_customer; omit to list them")] = None,
    url: Annotated[str, typer.Option(help="The emulator's base URL (env SIYU_EMULATOR_URL)")] = DEFAULT_URL,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=value, repeatable")] = None,
    raw_json: Annotated[str | None, typer.Option("--json", help="All parameters as one JSON object")] = None,
) -> None:
    """Make something happen in the emulator (and send its callback); prints the result as JSON."""
    base = url.rstrip("/")
    if action is None:
        _print_actions(_request("GET", f"{base}/emulator/actions")["actions"])
        return
    result = _request("POST", f"{base}/emulator/actions/{action}", _parse_params(param or [], raw_json))
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@emulator_app.command("summary")
def summary(
    url: Annotated[str, typer.Option(help="The emulator's base URL (env SIYU_EMULATOR_URL)")] = DEFAULT_URL,
) -> None:
    """Counts of everything in the running emulator, and its callback deliveries."""
    typer.echo(json.dumps(_request("GET", f"{url.rstrip('/')}/emulator/summary"), ensure_ascii=False, indent=2))


def _config_weights(config_ids: list[str]) -> dict[str, float]:
    """ID or ID=WEIGHT items as {id: weight}."""
    weights: dict[str, float] = {}
    for item in config_ids:
        config_id, sep, weight = item.partition("=")
        try:
            weights[config_id] = float(weight) if sep else 1.0
        except ValueError:
            raise typer.BadParameter(f"expected ID or ID=WEIGHT, got {item!r}", param_hint="--config-id") from None
    return weights


@emulator_app.command("traffic")
def traffic(
    url: Annotated[str, typer.Option(help="The emulator's base URL (env SIYU_EMULATOR_URL)")] = DEFAULT_URL,
    scans: Annotated[int, typer.Option(help="How many customers scan")] = 100,
    per_minute: Annotated[float, typer.Option(help="Scans per minute, spread evenly; 0 = as fast as possible")] = 60,
    churn: Annotated[float, typer.Option(help="Probability that a customer deletes the employee later")] = 0.0,
    churn_after: Annotated[float, typer.Option(help="Seconds between the scan and the deletion")] = 0.0,
    config_id: Annotated[
        list[str] | None, typer.Option(help="ID or ID=WEIGHT, repeatable; default every 联系我 code, equally")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the code choice and the churn draws")] = 0,
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish and print its report")] = True,
) -> None:
    """Simulate customers scanning 联系我 codes (callbacks included) in a running emulator."""
    base = url.rstrip("/")
    body: dict[str, Any] = {
        "scans": scans,
        "per_minute": per_minute,
        "churn": churn,
        "churn_after": churn_after,
        "seed": seed,
    }
    if config_id:
        body["config_ids"] = _config_weights(config_id)
    run = _request("POST", f"{base}/emulator/traffic", body)
    while wait and run["status"] == "running":
        time.sleep(0.25)
        run = _request("GET", f"{base}/emulator/traffic/{run['id']}")
    typer.echo(json.dumps(run, ensure_ascii=False, indent=2))
    if run["status"] == "failed":
        raise typer.Exit(1)
