"""OIDC sign-in end to end: a Router trusting a local issuer, driven by the SDK with Bearer JWTs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import agenttier
import pytest
from agenttier.auth import BearerTokenAuth
from agenttier.exceptions import AuthenticationError
from click.testing import CliRunner
from oidc_helpers import AUDIENCE, LocalIssuer, local_issuer, new_key
from router_helpers import ADMIN_GROUP, Router, config_for, running_router, stored_audit

from agenttier_router.api.oidc import OidcVerifier
from agenttier_router.cli import cli


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with local_issuer(new_key("k1")) as running:
        yield running


@pytest.fixture
def router(issuer: LocalIssuer, tmp_path: Path) -> Iterator[Router]:
    verifier = OidcVerifier(issuer.url, AUDIENCE, admin_group=ADMIN_GROUP, refresh_interval=0)
    with running_router(config_for(tmp_path, f"sqlite:///{tmp_path}/r.db", oidc=verifier)) as r:
        yield r


def _sdk(router: Router, token: str) -> agenttier.AgentTierClient:
    client = agenttier.AgentTierClient(router.url, auth=BearerTokenAuth(token), timeout=30)
    router._opened.append(client)
    return client


def test_a_bearer_token_signs_in_with_its_groups(router: Router, issuer: LocalIssuer) -> None:
    me = _sdk(router, issuer.token(sub="dana", email="dana@corp", groups=["eng"])).current_user()
    assert (me.sub, me.email, me.groups, me.is_admin) == ("dana", "dana@corp", ["eng"], False)
    admin = _sdk(router, issuer.token(sub="root", groups=[ADMIN_GROUP])).current_user()
    assert admin.is_admin
    client = _sdk(router, issuer.token(sub="dana"))
    client.create_sandbox("minimal", "sb-oidc")
    assert [s.name for s in client.list_sandboxes()] == ["sb-oidc"]
    # an API key still works beside OIDC, and sees only its own sandboxes
    assert router.client("alice").list_sandboxes() == []


def test_forged_tokens_are_401_and_recorded(router: Router, issuer: LocalIssuer,
                                            tmp_path: Path) -> None:
    forged = [issuer.token(exp=int(time.time()) - 600), issuer.token(aud="other"),
              issuer.token(new_key("k1")), "not-a-jwt"]
    for token in forged:
        with pytest.raises(AuthenticationError):
            _sdk(router, token).create_sandbox("minimal", "sb-x")
    assert router.state.recorder.flush(10)
    denied = stored_audit(f"sqlite:///{tmp_path}/r.db", action="create")
    assert [(e.actor, e.outcome) for e in denied] == [("anonymous", "denied")] * 4


def test_a_rotated_key_works_at_once(router: Router, issuer: LocalIssuer) -> None:
    assert _sdk(router, issuer.token()).current_user().sub == "alice"
    issuer.keys = [new_key("k2", "ES256")]
    assert _sdk(router, issuer.token(sub="after")).current_user().sub == "after"


def test_an_unreachable_idp_is_503_for_bearer_callers_only(tmp_path: Path) -> None:
    with local_issuer() as gone:
        url, token = gone.url, gone.token()
    verifier = OidcVerifier(url, AUDIENCE, timeout=2.0)
    with running_router(config_for(tmp_path, None, oidc=verifier)) as router:
        response = router.http().get("/user/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 503
        assert "identity provider is unavailable" in response.json()["error"]
        assert router.client("alice").current_user().sub == "alice"


def test_serve_refuses_a_plain_http_issuer_beyond_loopback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--oidc-issuer", "http://idp.example.com",
                                       "--oidc-audience", "x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "plain HTTP" in result.output


def test_serve_needs_an_audience_with_an_issuer(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--oidc-issuer", "https://idp.example.com",
                                       "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "audience" in result.output
