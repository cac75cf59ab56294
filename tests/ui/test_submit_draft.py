"""The Submit page keeps the tab's unsaved spec across pages: going to Jobs and back
brings the typed text back, marked as edited — in real Chromium against a real service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

DRAFT = "# my draft\ntask: {kind: lag_paper_linreg}\nschedule: {rounds: 7}\n"


def test_a_typed_spec_survives_leaving_the_page_and_coming_back(stack: Stack, page: Page) -> None:
    token, _ = new_user(stack, "draft")
    sign_in(page, stack.url, token, "#/submit")
    editor = page.locator("#spec-text")
    choose = page.locator("select[name=example]")
    expect(editor).not_to_have_value("")
    first = choose.input_value()
    example = editor.input_value()
    page.fill("#spec-text", DRAFT)
    edited = page.locator("#spec-edited")
    expect(edited).to_be_visible()

    page.click("#nav a[href='#/jobs']")
    expect(page.locator("#jobs-table")).to_be_visible()
    page.go_back()
    expect(editor).to_have_value(DRAFT)
    expect(choose).to_have_value(first)  # where the draft started from
    expect(edited).to_have_text(f"(edited from {first})")

    # A chosen example replaces the draft (confirmed), and is what comes back.
    others = [o for o in choose.locator("option").all_inner_texts() if o != first]
    page.once("dialog", lambda dialog: dialog.accept())
    choose.select_option(others[0])
    expect(edited).to_be_hidden()
    replaced = editor.input_value()
    assert replaced not in (DRAFT, example)
    page.click("#nav a[href='#/jobs']")
    expect(page.locator("#jobs-table")).to_be_visible()
    page.go_back()
    expect(choose).to_have_value(others[0])
    expect(editor).to_have_value(replaced)
    expect(edited).to_be_hidden()

    # Signing out ends the draft: the next sign-in in this tab starts from the example.
    page.fill("#spec-text", DRAFT)
    page.click("#signout")
    page.fill("#token", token)
    page.click("form.signin button[type=submit]")
    page.wait_for_selector("#nav:not([hidden])")
    page.goto(f"{stack.url}/#/submit")
    expect(choose).to_have_value(first)
    expect(editor).to_have_value(example)
