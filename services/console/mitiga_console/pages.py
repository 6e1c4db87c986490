"""The console's pages. Read-only pages need nothing; upload and retrain need the admin token, which the user
enters once (``/login``) and which then lives only in an HttpOnly, SameSite=Strict session cookie: never in a page
or a URL. Routes that call other services are synchronous, so FastAPI runs them in its thread pool."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mitiga_console import health, html
from mitiga_console.health import day
from mitiga_console.upstream import UpstreamError
from mitiga_core.bundle import read_manifest
from mitiga_core.errors import MitigaError, ModelNotFound
from mitiga_core.progress import RetrainStatus
from mitiga_core.promotion import Candidate, outcome
from mitiga_core.store import check_model_name
from mitiga_core.tasks import TASKS

if TYPE_CHECKING:
    from starlette.datastructures import FormData

    from mitiga_console.settings import ConsoleSettings
    from mitiga_console.upstream import Alert, Upstream
    from mitiga_core.store import ModelStore

COOKIE = "mitiga_admin"
STRATEGIES = ("full_history", "sliding_window", "gradual_forgetting")
MODES = ("warm_start", "reset")


def page(request: Request, upstream: Upstream, title: str, body: str, status: int = 200,
          refresh_s: float | None = None) -> HTMLResponse:
    alerts: list[Alert] = []
    with contextlib.suppress(UpstreamError):  # the alerts page says so; other pages just show no banner
        alerts = upstream.alerts()
    return HTMLResponse(html.layout(title, body, alerts=alerts, signed_in=COOKIE in request.cookies,
                                    refresh_s=refresh_s), status_code=status)


async def render(request: Request, upstream: Upstream, title: str, body: str, status: int = 200) -> HTMLResponse:
    """:func:`page` for an async route: off the event loop, since the banner asks Alertmanager."""
    return await anyio.to_thread.run_sync(lambda: page(request, upstream, title, body, status))


def _name(name: str) -> str:
    try:
        return check_model_name(name)
    except ValueError as exc:
        raise ModelNotFound(f"model name: {exc}") from None


def build_router(settings: ConsoleSettings, store: ModelStore, upstream: Upstream) -> APIRouter:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def models(request: Request) -> HTMLResponse:
        rows = []
        for name in store.list_models():
            try:
                state = upstream.drift(name)
                drift = html.level(state["level"]) if state else "no window yet"
            except UpstreamError:
                drift = "detector unreachable"
            decisions = store.decisions(name)
            last = decisions[-1] if decisions else None
            verdict = "-" if last is None else outcome(last) + (f" v{last['version']}" if last.get("version") else "")
            rows.append([f'<a href="/models/{html.esc(name)}">{html.esc(name)}</a>',
                         html.esc(", ".join(store.list_versions(name))), html.esc(store.champion(name) or "-"),
                         drift, html.esc(verdict)])
        body = (html.table(["model", "versions", "champion", "drift", "last gate decision"], rows, "models")
                if rows else '<p class="notice">No model yet: <a href="/upload">upload one</a>.</p>')
        return page(request, upstream, "Models", body)

    @router.get("/models/{name}", response_class=HTMLResponse)
    def model(request: Request, name: str) -> HTMLResponse:
        name = _name(name)
        if name not in store.list_models():
            return page(request, upstream, name, html.error(f"model {name!r} not found"), 404)
        champion = store.champion(name)
        trial = Candidate.of(store.candidate(name))
        rows = []
        for version in reversed(store.list_versions(name)):
            manifest = read_manifest(store.path(name, version))
            metrics = ", ".join(f"{k} {html.pretty(v)}" for k, v in sorted(manifest.training.metrics.items()))
            role = " <strong>champion</strong>" if version == champion else (
                (f" <strong>on {html.esc(trial.mode)} trial</strong>" if trial.live else
                 " <strong>awaiting approval</strong>") if trial and trial.version == version else "")
            rows.append([html.esc(version) + role,
                         html.esc(manifest.lineage.parent or "-"), html.esc(manifest.lineage.trigger),
                         html.esc(f"{day(manifest.training.data_start)} .. {day(manifest.training.data_end)}"),
                         html.esc(manifest.lineage.strategy or "-"), metrics or "-"])
        versions = html.table(["version", "parent", "trigger", "data window", "strategy", "metrics"], rows,
                              "versions")
        logged = store.decisions(name)[-20:]
        decisions = html.table(["when", "trigger", "version", "decision", "metric", "champion", "challenger",
                                "rows compared", "reason"], [_decision_row(d) for d in reversed(logged)],
                               "decisions") if logged else '<p id="decisions">No retraining yet.</p>'
        earlier = [v for v in reversed(store.list_versions(name)) if v != champion]
        if champion and earlier:
            versions += _champion_form(name, earlier)
        if trial is not None and not trial.live:
            versions += _approval(name, trial.version, upstream.approval(name))
        body = (f"<h2>Versions</h2>{versions}<h2>Health</h2>{health.render(upstream, name)}"
                f"<h2>Gate decisions</h2>{decisions}<h2 id=\"retrain\">Retrain</h2>"
                f"{_breaker(name, upstream.retraining(name))}{_retrain_form(name)}")
        return page(request, upstream, name, body)

    @router.post("/models/{name}/approval")
    def approval(request: Request, name: str, version: Annotated[str, Form()], decision: Annotated[str, Form()],
                 reason: Annotated[str, Form()] = "") -> Response:
        """Approve or reject the challenger waiting for approval (admin)."""
        name = _name(name)
        token = request.cookies.get(COOKIE)
        if not token:
            return page(request, upstream, "Approval", html.error("sign in with the admin token first"), 401)
        try:
            upstream.decide(name, token, {"version": version, "decision": decision, "by": "console",
                                          "reason": reason.strip()})
        except UpstreamError as exc:
            return page(request, upstream, "Approval", html.error(str(exc)), exc.status)
        return RedirectResponse(f"/models/{name}", status_code=303)

    @router.post("/models/{name}/retraining")
    def retraining(request: Request, name: str, action: Annotated[str, Form()],
                   reason: Annotated[str, Form()] = "") -> Response:
        """Pause or resume the model's automatic retraining (admin)."""
        name = _name(name)
        token = request.cookies.get(COOKIE)
        if not token:
            return page(request, upstream, "Retraining", html.error("sign in with the admin token first"), 401)
        if action not in ("pause", "resume"):
            return page(request, upstream, "Retraining", html.error("action: pause or resume"), 400)
        body = {"by": "console"} | ({"reason": reason.strip()} if action == "pause" and reason.strip() else {})
        try:
            upstream.set_retraining(name, token, action, body)
        except UpstreamError as exc:
            return page(request, upstream, "Retraining", html.error(str(exc)), exc.status)
        return RedirectResponse(f"/models/{name}#retrain", status_code=303)

    @router.post("/models/{name}/champion")
    def make_champion(request: Request, name: str, version: Annotated[str, Form()]) -> Response:
        """Roll the champion back (or forward) to an existing version, through the inference service."""
        name = _name(name)
        token = request.cookies.get(COOKIE)
        if not token:
            return page(request, upstream, "Champion", html.error("sign in with the admin token first"), 401)
        try:
            done = upstream.rollback(name, token, version.strip())
        except UpstreamError as exc:
            return page(request, upstream, "Champion", html.error(str(exc)), exc.status)
        return RedirectResponse(f"/models/{name}?champion={done['version']}", status_code=303)

    @router.get("/models/{name}/report", response_class=HTMLResponse)
    def report(name: str) -> HTMLResponse:
        try:
            return HTMLResponse(upstream.report(_name(name)))
        except UpstreamError as exc:
            return HTMLResponse(html.layout("Drift report", html.error(str(exc))), status_code=exc.status)

    @router.post("/models/{name}/retrain")
    def retrain(request: Request, name: str, strategy: Annotated[str, Form()] = "",
                mode: Annotated[str, Form()] = "", epochs: Annotated[str, Form()] = "") -> Response:
        name = _name(name)
        token = request.cookies.get(COOKIE)
        if not token:
            return page(request, upstream, "Retrain", html.error("sign in with the admin token first"), 401)
        options: dict[str, Any] = {k: v for k, v in {"strategy": strategy, "mode": mode}.items() if v}
        if epochs.strip():
            options["epochs"] = int(epochs) if epochs.strip().isdigit() else epochs
        try:
            started = upstream.retrain(name, token, options)
        except UpstreamError as exc:
            return page(request, upstream, "Retrain", html.error(str(exc)) + _retrain_form(name), exc.status)
        return RedirectResponse(f"/retrains/{started['request_id']}", status_code=303)

    @router.get("/retrains/{request_id}", response_class=HTMLResponse)
    def progress(request: Request, request_id: str) -> HTMLResponse:
        try:
            found = upstream.progress(request_id)
        except UpstreamError as exc:
            return page(request, upstream, "Retraining", html.error(str(exc)), exc.status, refresh_s=2)
        if found is None:  # launched, nothing reported yet
            return page(request, upstream, "Retraining", '<p id="status">starting</p>', refresh_s=1)
        status = RetrainStatus.of(found.get("status"))
        finished = status is not None and status.finished
        epoch, epochs = int(found.get("epoch", 0)), max(int(found.get("epochs", 0)), 1)
        eta = found.get("eta_s")
        body = (f'<p>Model <a href="/models/{html.esc(found.get("model"))}">{html.esc(found.get("model"))}</a>, '
                f'run {html.esc(request_id)}</p><p>Status: <strong id="status">{html.esc(status or "unknown")}'
                f'</strong></p><progress id="epochs" value="{epoch}" max="{epochs}"></progress> '
                f'epoch {epoch}/{epochs}, loss {html.pretty(found.get("loss", "-"))}'
                + (f", about {float(eta):.0f} s left" if eta is not None and not finished else "")
                + (f'<p id="reason">{html.esc(found.get("reason"))}</p>' if found.get("reason") else "")
                + (f'<p>Version <strong id="version">{html.esc(found["version"])}</strong> serves.</p>'
                   if found.get("version") else ""))
        return page(request, upstream, "Retraining", body, refresh_s=None if finished else 1)

    @router.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request) -> HTMLResponse:
        source = (f'<p class="notice" id="alerts-source">From {html.esc(upstream.alerts_source)}'
                  + ("" if settings.alertmanager_url else " (no Alertmanager configured: MITIGA_ALERTMANAGER_URL)")
                  + ".</p>")
        try:
            firing = upstream.alerts()
        except UpstreamError as exc:
            return page(request, upstream, "Alerts", source + html.error(str(exc)), 502)
        rows = [[html.level(a.severity), html.esc(a.name), html.esc(a.model or "-"), html.esc(a.summary),
                 f'<a href="{html.esc(a.runbook)}">runbook</a>' if a.runbook.startswith("http") else "-"]
                for a in firing]
        body = html.table(["severity", "alert", "model", "summary", "what to do"], rows, "alerts") if rows else \
            '<p id="no-alerts">Nothing is firing.</p>'
        return page(request, upstream, "Alerts", source + body)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, upstream, "Sign in", _login_form())

    @router.post("/login")
    def login(token: Annotated[str, Form()]) -> Response:
        response = RedirectResponse("/", status_code=303)
        # a session cookie (no expiry): gone when the browser closes; scripts cannot read it; never sent cross-site
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", secure=settings.secure_cookie)
        return response

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=settings.secure_cookie)
        return response

    @router.get("/upload", response_class=HTMLResponse)
    def upload_form(request: Request) -> HTMLResponse:
        return page(request, upstream, "Upload a model", _upload_form())

    @router.post("/upload")
    async def upload(request: Request) -> Response:
        token = request.cookies.get(COOKIE)
        if not token:  # before a byte of the body is read
            return await render(request, upstream, "Upload a model",
                                html.error("sign in with the admin token first"), 401)
        form = await request.form(max_files=1, max_fields=8)
        try:
            return await _upload(request, form, token)
        finally:
            await form.close()  # the spooled files

    async def _upload(request: Request, form: FormData, token: str) -> Response:
        file = form.get("file")
        name = str(form.get("name") or "").strip()
        if file is None or isinstance(file, str) or not name:
            return await render(request, upstream, "Upload a model",
                                html.error("choose a file and give the model a name") + _upload_form(), 422)
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            return await render(request, upstream, "Upload a model",
                                html.error(f"file: larger than {settings.max_upload_bytes} bytes"), 413)
        params = {k: str(form.get(k)).strip() for k in ("task", "features", "classes", "units")
                  if str(form.get(k) or "").strip()}
        params["champion"] = "true" if form.get("champion") else "false"
        try:
            done = await anyio.to_thread.run_sync(lambda: upstream.upload(_name(name), token, data, params))
        except (UpstreamError, MitigaError) as exc:
            status = exc.status if isinstance(exc, UpstreamError) else 422
            return await render(request, upstream, "Upload a model", html.error(str(exc)) + _upload_form(), status)
        return RedirectResponse(f"/models/{done['name']}?uploaded={done['version']}", status_code=303)

    return router


def _decision_row(d: dict[str, Any]) -> list[str]:
    return [html.esc(d.get("time", "")), html.esc(d.get("trigger", "") or d.get("stage", "")),
            html.esc(d.get("version") or "-"), html.esc(outcome(d)), html.esc(d.get("metric", "")),
            html.pretty(d.get("champion", "")), html.pretty(d.get("challenger", "")),
            html.esc(d.get("holdout_rows", d.get("labelled", ""))), html.esc(d.get("reason", ""))]


def _champion_form(name: str, versions: list[str]) -> str:
    return (f'<form method="post" action="/models/{html.esc(name)}/champion" id="champion-form">'
            f'<label>make version <select name="version">{html.options(versions)}</select></label> '
            "<button>the champion</button> (admin; every replica swaps to it)</form>")


def _approval(name: str, version: str, found: dict[str, Any] | None) -> str:
    """The waiting challenger's evidence and the Approve / Reject form."""
    gate = (found or {}).get("gate") or {}
    trial = (found or {}).get("trial") or {}
    said = [f"gate: {gate.get('metric')} {html.pretty(gate.get('challenger'))} vs champion "
            f"{html.pretty(gate.get('champion'))} on {gate.get('holdout_rows', '?')} held-out rows"] if gate else []
    if trial:
        said.append(f"{trial.get('stage')} trial: {trial.get('outcome')} on {trial.get('labelled', '?')} labelled "
                    "requests")
    evidence = "".join(f"<li>{html.esc(line)}</li>" for line in said)
    return (f'<div class="banner" id="approval">Version {html.esc(version)} won and awaits approval.<ul>{evidence}'
            f'</ul><form method="post" action="/models/{html.esc(name)}/approval" id="approval-form">'
            f'<input type="hidden" name="version" value="{html.esc(version)}"><label>reason <input name="reason" '
            'size="30"></label><button name="decision" value="approve">approve</button> <button name="decision" '
            'value="reject">reject</button> (admin)</form></div>')


def _breaker(name: str, status: dict[str, Any] | None) -> str:
    """The model's automatic retraining: a banner and a Resume button while it is paused, else a Pause form."""
    if status is None:
        return ""
    action = f'<form method="post" action="/models/{html.esc(name)}/retraining" id="retraining-form">'
    paused = status.get("paused")
    if paused:
        since = datetime.fromtimestamp(float(paused.get("since", 0)), UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (f'<div class="banner" id="paused-banner">Automatic retraining is paused since {since} by '
                f'{html.esc(paused.get("by"))}: {html.esc(paused.get("reason"))}. Manual retraining stays possible.'
                f'</div>{action}<input type="hidden" name="action" value="resume"><button>resume automatic '
                "retraining</button> (admin)</form>")
    return (f'{action}<input type="hidden" name="action" value="pause"><label>reason <input name="reason" '
            'size="30"></label><button>pause automatic retraining</button> (admin; '
            f'{int(status.get("failed_in_a_row", 0))} refused or failed in a row)</form>')


def _retrain_form(name: str) -> str:
    return (f'<form method="post" action="/models/{html.esc(name)}/retrain" id="retrain-form">'
            f'<label>strategy <select name="strategy"><option value="">(the detector\'s default)</option>'
            f"{html.options(STRATEGIES)}</select></label>"
            f'<label>mode <select name="mode"><option value="">(default)</option>{html.options(MODES)}</select>'
            '</label><label>epochs <input name="epochs" size="4" inputmode="numeric"></label>'
            "<button>retrain</button></form>")


def _login_form() -> str:
    return ('<form method="post" action="/login"><label>admin token <input type="password" name="token" '
            'autocomplete="off" required></label><button>sign in</button></form>'
            "<p>The token stays in this browser session's cookie; it is never put in a page or a URL.</p>")


def _upload_form() -> str:
    return ('<form method="post" action="/upload" enctype="multipart/form-data" id="upload-form">'
            '<label>file (.keras or bundle .zip) <input type="file" name="file" accept=".keras,.zip" required>'
            '</label><label>model name <input name="name" required pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?">'
            '</label><label>task (a plain .keras) <select name="task"><option value="">(from the bundle, or the '
            'model\'s last layer)</option>'
            f'{html.options(sorted(TASKS))}</select></label><label>features (comma-separated) '
            '<input name="features"></label><label>units (USD, mg/m³) <input name="units" size="8"></label>'
            '<label>classes (a classifier\'s, comma-separated) <input name="classes">'
            '</label><label><input type="checkbox" name="champion" checked> make it the '
            "champion</label><button>upload</button></form>")
