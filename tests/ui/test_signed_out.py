"""A tab whose token the server stops accepting (its user disabled, the token
revoked) returns to the sign-in page saying why, and signing in again returns to the
page the user was on — in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

# What the API answers for a token it no longer accepts (service.auth).
REFUSED = "invalid, expired or revoked token, or a disabled user: ask your lab's admin"


def expect_signed_out_saying_why(page: Page) -> None:
    # The page's open jobs feed is closed at its next token re-check and its
    # reconnection is refused: no click or reload needed.
    expect(page.locator("form.signin")).to_be_visible(timeout=30_000)
    expect(page.locator("#signed-out")).to_contain_text(REFUSED)
    expect(page.locator("#nav")).to_be_hidden()


def test_a_disabled_users_open_tab_says_why_it_signed_out(stack: Stack, page: Page) -> None:
    token, client = new_user(stack, "disabled")
    with client:
        user_id = client.me()["id"]
    sign_in(page, stack.url, token)
    expect(page.locator("#jobs-table")).to_be_visible()
    with stack.admin() as admin:
        admin._request("PATCH", f"/v1/users/{user_id}", json={"disabled": True})
    expect_signed_out_saying_why(page)


def test_a_revoked_token_says_why_and_signing_in_again_returns_to_the_page(
    stack: Stack, page: Page
) -> None:
    token, client = new_user(stack, "revoked")
    with client:
        (first,) = client._request("GET", "/v1/tokens")["data"]
        second = client._request("POST", "/v1/tokens", json={"expires_in_days": 1})["token"]
        sign_in(page, stack.url, token, "#/jobs?status=succeeded")
        expect(page.locator("#jobs-table")).to_be_visible()
        client._request("DELETE", f"/v1/tokens/{first['id']}")
    expect_signed_out_saying_why(page)

    page.fill("#token", second)
    page.click("form.signin button[type=submit]")
    expect(page.locator("#jobs-table")).to_be_visible()
    expect(page.locator("select[name=status]")).to_have_value("succeeded")
    # The reason went with the refused token: a plain sign-out gives no reason.
    page.click("#signout")
    expect(page.locator("form.signin")).to_be_visible()
    expect(page.locator("#signed-out")).to_have_count(0)


def test_another_user_signing_in_after_a_refused_token_starts_afresh(
    stack: Stack, page: Page
) -> None:
    """The tab keeps a refused user's draft and page for that user only: another user
    signing in in that tab gets neither."""
    token, client = new_user(stack, "leaving")
    other, _ = new_user(stack, "arriving")
    with client:
        (first,) = client._request("GET", "/v1/tokens")["data"]
        sign_in(page, stack.url, token, "#/submit")
        page.fill("#spec-text", "# my private draft\ntask: {kind: lag_paper_linreg}\n")
        page.goto(f"{stack.url}/#/jobs?status=failed")
        expect(page.locator("#jobs-table")).to_be_visible()
        client._request("DELETE", f"/v1/tokens/{first['id']}")
    expect_signed_out_saying_why(page)

    page.fill("#token", other)
    page.click("form.signin button[type=submit]")
    expect(page.locator("#jobs-table")).to_be_visible()
    expect(page.locator("select[name=status]")).to_have_value("")
    page.goto(f"{stack.url}/#/submit")
    expect(page.locator("#spec-text")).not_to_have_value("")
    expect(page.locator("#spec-text")).not_to_contain_text("my private draft")
    assert "my private draft" not in page.locator("#spec-text").input_value()
