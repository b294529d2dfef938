"""Share links and kind-specific unshare: the contract, run on every plane (local, Kubernetes).

A plane is given only a token's SHA-256; these tests make tokens as the API
does and hand the planes their hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from datetime import UTC, datetime, timedelta

import pytest
from contract_helpers import Driver
from cp_helpers import NS

from agenttier_router.controlplane import (
    ControlPlaneError,
    InvalidRequest,
    SandboxNotFound,
    ShareLink,
    ShareLinkNotFound,
    ShareLinkRedeemed,
    ShareLinkRefused,
)


def _token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def _link(driver: Driver, *, level: str = "viewer", max_uses: int = 0,
          expires_at: datetime | None = None, name: str = "sb") -> tuple[ShareLink, str]:
    _, digest = _token()
    link = driver.plane.create_share_link(name, NS, token_hash=digest, level=level,  # type: ignore[arg-type]
                                          expires_at=expires_at, max_uses=max_uses)
    return link, digest


def test_a_link_is_listed_redeemed_counted_and_revoked(driver: Driver) -> None:
    driver.running("sb")
    later = datetime.now(UTC) + timedelta(hours=1)
    link, digest = _link(driver, level="collaborator", max_uses=3, expires_at=later)
    assert re.fullmatch(r"[0-9a-f]{16}", link.id)
    assert (link.level, link.max_uses, link.used_count) == ("collaborator", 3, 0)
    assert link.expires_at == later
    assert driver.plane.get("sb", NS).shares.links == (link,)

    redeemed = driver.plane.redeem_share_link(digest, "bob")
    assert isinstance(redeemed, ShareLinkRedeemed)
    assert (redeemed.level, redeemed.link.id, redeemed.link.used_count) == (
        "collaborator", link.id, 1)
    assert dict(redeemed.sandbox.shares.users) == {"bob": "collaborator"}
    assert (redeemed.sandbox.name, redeemed.sandbox.namespace) == ("sb", NS)
    again = driver.plane.redeem_share_link(digest, "carol@example.com")
    assert again.link.used_count == 2
    now = driver.plane.get("sb", NS)
    assert dict(now.shares.users) == {"bob": "collaborator", "carol@example.com": "collaborator"}
    assert [(x.id, x.used_count) for x in now.shares.links] == [(link.id, 2)]

    revoked = driver.plane.revoke_share_link("sb", NS, link.id)
    assert revoked.shares.links == ()
    assert dict(revoked.shares.users) == {"bob": "collaborator",
                                          "carol@example.com": "collaborator"}  # grants stay
    with pytest.raises(ShareLinkNotFound):
        driver.plane.redeem_share_link(digest, "dave")
    with pytest.raises(ShareLinkNotFound):
        driver.plane.revoke_share_link("sb", NS, link.id)


def test_several_links_keep_their_order_and_their_own_counts(driver: Driver) -> None:
    driver.running("sb")
    first, one = _link(driver)
    second, _ = _link(driver, level="collaborator", max_uses=1)
    assert first.id != second.id and first.expires_at is None
    driver.plane.redeem_share_link(one, "bob")
    links = driver.plane.get("sb", NS).shares.links
    assert [(x.id, x.level, x.used_count) for x in links] == [
        (first.id, "viewer", 1), (second.id, "collaborator", 0)]
    driver.plane.share("sb", NS, "group", "devs", "viewer")  # a share keeps the links
    driver.plane.unshare("sb", NS, "devs")
    assert [x.id for x in driver.plane.get("sb", NS).shares.links] == [first.id, second.id]


def test_exactly_one_of_two_concurrent_redeems_wins_the_last_use(driver: Driver) -> None:
    driver.running("sb")
    _, digest = _link(driver, max_uses=1)
    start = threading.Barrier(2)
    won: list[str] = []
    refused: list[ControlPlaneError] = []

    def redeem(who: str) -> None:
        start.wait()
        try:
            driver.plane.redeem_share_link(digest, who)
            won.append(who)
        except ShareLinkRefused as error:
            refused.append(error)

    threads = [threading.Thread(target=redeem, args=(who,)) for who in ("bob", "carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and len(refused) == 1
    assert refused[0].reason == "exhausted"  # type: ignore[attr-defined]
    sandbox = driver.plane.get("sb", NS)
    assert list(sandbox.shares.users) == won
    assert sandbox.shares.links[0].used_count == 1


def test_an_exhausted_link_is_refused_and_counts_nothing(driver: Driver) -> None:
    driver.running("sb")
    _, digest = _link(driver, max_uses=1)
    driver.plane.redeem_share_link(digest, "bob")
    with pytest.raises(ShareLinkRefused, match="used") as refused:
        driver.plane.redeem_share_link(digest, "carol")
    assert refused.value.reason == "exhausted"
    assert refused.value.sandbox.name == "sb" and refused.value.link.used_count == 1
    sandbox = driver.plane.get("sb", NS)
    assert dict(sandbox.shares.users) == {"bob": "viewer"}
    assert sandbox.shares.links[0].used_count == 1


def test_an_expired_link_is_refused(driver: Driver) -> None:
    driver.running("sb")
    link, digest = _link(driver, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(ShareLinkRefused, match="expired") as refused:
        driver.plane.redeem_share_link(digest, "bob")
    assert (refused.value.reason, refused.value.link.id) == ("expired", link.id)
    sandbox = driver.plane.get("sb", NS)
    assert dict(sandbox.shares.users) == {} and sandbox.shares.links[0].used_count == 0


def test_the_owner_cannot_redeem_a_link_to_their_own_sandbox(driver: Driver) -> None:
    driver.running("sb")  # owned by alice
    _, digest = _link(driver)
    with pytest.raises(ShareLinkRefused, match="own") as refused:
        driver.plane.redeem_share_link(digest, "alice")
    assert refused.value.reason == "owner"
    sandbox = driver.plane.get("sb", NS)
    assert dict(sandbox.shares.users) == {} and sandbox.shares.links[0].used_count == 0


def test_a_viewer_link_never_lowers_a_collaborator(driver: Driver) -> None:
    driver.running("sb")
    driver.plane.share("sb", NS, "user", "bob", "collaborator")
    _, digest = _link(driver, level="viewer")
    redeemed = driver.plane.redeem_share_link(digest, "bob")
    assert redeemed.level == "collaborator" and redeemed.link.used_count == 1
    assert dict(driver.plane.get("sb", NS).shares.users) == {"bob": "collaborator"}


@pytest.mark.parametrize("digest", [
    pytest.param(hashlib.sha256(b"never issued").hexdigest(), id="unknown"),
    pytest.param("zz" * 32, id="not-hex"),
    pytest.param("ab", id="short"),
    pytest.param("", id="empty"),
])
def test_an_unknown_or_malformed_hash_is_not_found(driver: Driver, digest: str) -> None:
    driver.running("sb")
    _, real = _link(driver)
    with pytest.raises(ShareLinkNotFound):
        driver.plane.redeem_share_link(digest, "bob")
    with pytest.raises(ShareLinkNotFound):  # its upper-case spelling is not the stored hash
        driver.plane.redeem_share_link(real.upper(), "bob")
    assert dict(driver.plane.get("sb", NS).shares.users) == {}


def test_link_calls_on_a_missing_sandbox(driver: Driver) -> None:
    _, digest = _token()
    with pytest.raises(SandboxNotFound):
        driver.plane.create_share_link("nope", NS, token_hash=digest, level="viewer",
                                       expires_at=None, max_uses=0)
    with pytest.raises(SandboxNotFound):
        driver.plane.revoke_share_link("nope", NS, "0123456789abcdef")


@pytest.mark.parametrize(("change", "message"), [
    ({"level": "owner"}, "level"),
    ({"token_hash": "not-a-hash"}, "token_hash"),
    ({"max_uses": -1}, "maxUses"),
    ({"max_uses": True}, "maxUses"),
    ({"expires_at": datetime(2030, 1, 1)}, "time zone"),  # naive
])
def test_bad_new_links_are_refused(driver: Driver, change: dict[str, object],
                                   message: str) -> None:
    driver.running("sb")
    args: dict[str, object] = {"token_hash": _token()[1], "level": "viewer",
                               "expires_at": None, "max_uses": 0, **change}
    with pytest.raises(InvalidRequest, match=message):
        driver.plane.create_share_link("sb", NS, **args)  # type: ignore[arg-type]
    assert driver.plane.get("sb", NS).shares.links == ()


def test_a_deleted_sandbox_takes_its_links_with_it(driver: Driver) -> None:
    driver.running("sb")
    _, digest = _link(driver)
    driver.delete("sb")
    driver.running("sb")  # the same name again: a new sandbox, without the old links
    assert driver.plane.get("sb", NS).shares.links == ()
    with pytest.raises(ShareLinkNotFound):
        driver.plane.redeem_share_link(digest, "bob")


@pytest.mark.parametrize(("kind", "users", "groups"), [
    ("user", {}, {"devs": "viewer"}),
    ("group", {"devs": "collaborator"}, {}),
    (None, {}, {}),
])
def test_unshare_by_kind_keeps_the_other_kind(driver: Driver, kind: str | None,
                                               users: dict[str, str],
                                               groups: dict[str, str]) -> None:
    driver.running("sb")
    driver.plane.share("sb", NS, "user", "devs", "collaborator")
    driver.plane.share("sb", NS, "group", "devs", "viewer")
    revoked = driver.plane.unshare("sb", NS, "devs", kind)  # type: ignore[arg-type]
    assert (dict(revoked.shares.users), dict(revoked.shares.groups)) == (users, groups)
    assert driver.plane.get("sb", NS).shares == revoked.shares


def test_unshare_refuses_an_unknown_kind(driver: Driver) -> None:
    driver.running("sb")
    driver.plane.share("sb", NS, "user", "bob", "viewer")
    with pytest.raises(InvalidRequest, match="kind"):
        driver.plane.unshare("sb", NS, "bob", "robot")  # type: ignore[arg-type]
    assert dict(driver.plane.get("sb", NS).shares.users) == {"bob": "viewer"}
