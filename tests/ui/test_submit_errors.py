"""The Submit page's error list: in line order, and a spec that is no YAML/JSON said
without the parse's internal field name — in real Chromium against a real service."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Stack
from tests.ui.conftest import new_user, sign_in

pytestmark = pytest.mark.ray

# Wrong fields on lines 2, 4 and 6, written in an order other than the spec model's.
SCATTERED = """\
name: scattered
schedule: {rounds: 0}
distributed:
  workers: 0
task:
  kind: no_such_task
"""


def test_errors_are_listed_in_line_order_without_the_parse_field(stack: Stack, page: Page) -> None:
    token, _ = new_user(stack, "submit-errors")
    sign_in(page, stack.url, token, "#/submit")
    items = page.locator(".error-list li, .error-list .error")

    page.fill("#spec-text", "task: [unclosed\n")
    page.click("#submit")
    expect(items).to_have_count(1)
    expect(items.first).not_to_have_text(re.compile(r"^(line \d+: )?text: "))
    expect(items.first).to_contain_text("YAML")

    page.fill("#spec-text", SCATTERED)
    page.click("#submit")
    expect(items).to_have_count(3)  # the last try's error replaced by this one's three
    lines = [int(re.match(r"line (\d+)", text)[1]) for text in items.all_inner_texts()]  # type: ignore[index]
    assert lines == sorted(lines), items.all_inner_texts()
