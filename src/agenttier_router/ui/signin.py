"""Signing in with an API key, signing out, and who may see which page.

``POST /ui/signin`` trades the key (a form field, so never in a URL) for a
session cookie: HttpOnly, SameSite=Strict, Secure over HTTPS. The key is not
stored or logged. With ``--dev-auth`` there is nothing to sign in to.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from agenttier_router.api.auth import Identity
from agenttier_router.api.context import authenticate, identify_key, services
from agenttier_router.api.sessions import COOKIE, SessionStore

from .render import page

__all__ = ["router", "viewer"]

router = APIRouter(include_in_schema=False)

_MAX_FORM = 4096


def _sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.sessions
    return store


def _next(value: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if value and value.startswith("/ui/") and not value.startswith("//"):
        return value
    return "/ui/"  # home: activity for admins, sandboxes for everyone else


def viewer(request: Request, *, admin: bool) -> Identity | Response:
    """The signed-in caller, or the response to send instead: sign in, or "admins only"."""
    identity = authenticate(services(request), request)
    if identity is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/signin?next={quote(target, safe='')}", status_code=303)
    if admin and not identity.is_admin:
        return page(request, "admins_only.html", identity, status=403)
    return identity


@router.get("/")
def root() -> RedirectResponse:
    """The Router's home is its pages."""
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/")
@router.get("/ui")
def home(request: Request) -> Response:
    """The first page: activity for admins, sandboxes for everyone else."""
    seen = viewer(request, admin=False)
    if isinstance(seen, Response):
        return seen
    return RedirectResponse("/ui/activity" if seen.is_admin else "/ui/sandboxes",
                            status_code=303)


@router.get("/ui/signin")
def signin_form(request: Request, next: str | None = None) -> Response:
    """The sign-in form (an already signed-in browser goes on)."""
    identity = authenticate(services(request), request)
    if identity is not None:
        return RedirectResponse(_next(next), status_code=303)
    return page(request, "signin.html", None, next=_next(next), error="")


@router.post("/ui/signin")
async def signin(request: Request) -> Response:
    """Check the API key; on success set the session cookie and go on."""
    body = await request.body()
    if len(body) > _MAX_FORM:
        return page(request, "signin.html", None, next="/ui/", status=413,
                    error="The form is too large.")
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    key = (form.get("api_key") or [""])[0].strip()
    target = _next((form.get("next") or [""])[0])
    built = services(request)
    if built.dev_auth:
        return RedirectResponse(target, status_code=303)
    identity = identify_key(built, key)  # a sandbox-scoped key cannot sign in
    if identity is None:
        return page(request, "signin.html", None, next=target, status=401,
                    error="That API key is not valid.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, _sessions(request).open(identity), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/ui/signout")
def signout(request: Request) -> Response:
    """End the session and forget the cookie."""
    _sessions(request).close(request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
