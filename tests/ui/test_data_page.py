"""The Data page in real Chromium against a real service: a user uploads a dataset
from the browser (a bad file gets the server's 422 beside the form), sees its
`upload:<id>`, what it holds and their storage grow, cannot delete it while a job
that names it is unfinished (the 409 names the job), and deletes it afterwards,
freeing the storage."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from service.client import TERMINAL_STATUSES, Client
from tests.e2e.conftest import Stack
from tests.polling import wait_until
from tests.ui.conftest import new_user, screenshot, sign_in

pytestmark = pytest.mark.ray

TEXT = ("to be, or not to be, that is the question. " * 40).encode()


def long_char_lm(ref: str) -> dict[str, Any]:
    """Runs until cancelled: the upload stays in use while the test tries to delete it."""
    return {
        "name": "names-the-upload",
        "task": {"kind": "char_lm", "dataset": ref, "seq_len": 16, "max_chars": 1000},
        "model": {"cell": "rnn", "hidden_size": 8},
        "distributed": {"workers": 1, "cpus_per_worker": 0.25},
        # No checkpoint before it is cancelled: the storage line then counts the upload only.
        "schedule": {
            "rounds": 200_000,
            "batch_size": 8,
            "eval_every": 50,
            "checkpoint_every": 200_000,
        },
    }


def stored_bytes(page: Page) -> int:
    return int(page.get_attribute("#storage", "data-bytes") or -1)


def test_upload_use_and_delete_a_dataset_from_the_data_page(stack: Stack, page: Page) -> None:
    token, _ = new_user(stack, "uploader")
    sign_in(page, stack.url, token, "#/data")
    expect(page.locator("#datasets tbody")).to_contain_text("No uploads yet.")
    wait_until(lambda: stored_bytes(page) == 0, timeout=20, what="the storage line")

    # Not text: the server's reason shows beside the form, and nothing is stored.
    page.set_input_files(
        "#dataset-file", {"name": "weights.txt", "mimeType": "text/plain", "buffer": b"\xff\x00"}
    )
    page.click("#upload")
    expect(page.locator("#upload-result .error")).to_contain_text("not a valid text dataset")
    with Client(stack.url, token) as client:
        assert client.datasets() == []

    page.set_input_files(
        "#dataset-file", {"name": "hamlet.txt", "mimeType": "text/plain", "buffer": TEXT}
    )
    page.click("#upload")
    ref = page.locator("#new-ref").inner_text()
    with Client(stack.url, token) as client:
        [dataset] = client.datasets()
    assert ref == dataset["ref"] == f"upload:{dataset['id']}"
    row = page.locator(f"#datasets tr[data-dataset-id='{dataset['id']}']")
    expect(row).to_contain_text("hamlet.txt")
    # Each row's Delete is named for its upload (not one "Delete" per row).
    expect(row.locator("button.delete")).to_have_accessible_name(
        f"Delete upload {ref} (hamlet.txt)"
    )
    # What it holds, the summary taken at upload, as `lagtrain datasets` writes it.
    distinct = len(set(TEXT.decode()))
    expect(row.locator("td.contents")).to_have_text(f"{len(TEXT):,} chars, {distinct} distinct")
    wait_until(lambda: stored_bytes(page) == len(TEXT), timeout=20, what="the storage line")
    screenshot(page, "data")

    # A job that names it is unfinished: the delete is refused and says which job.
    with Client(stack.url, token) as client:
        job_id = client.submit(long_char_lm(ref))["id"]
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.delete").click()
    expect(page.locator("#dataset-errors .error")).to_contain_text(f"job {job_id}")
    expect(row).to_be_visible()
    expect(row.locator("button.delete")).to_be_enabled()

    with Client(stack.url, token) as client:
        client.cancel(job_id)
        wait_until(
            lambda: client.job(job_id)["status"] in TERMINAL_STATUSES, timeout=60, what="cancel"
        )
    page.once("dialog", lambda dialog: dialog.dismiss())  # declined: it stays
    row.locator("button.delete").click()
    expect(row).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.delete").click()
    expect(row).to_have_count(0)
    expect(page.locator("#dataset-errors .error")).to_have_count(0)
    wait_until(lambda: stored_bytes(page) == 0, timeout=20, what="the storage line")
    with Client(stack.url, token) as client:
        assert client.datasets() == []
        assert client.me()["usage"]["storage_bytes"] == 0

    # Newest first (the API pages oldest first; the page reads them all).
    for name in ("first.txt", "second.txt"):
        page.set_input_files(
            "#dataset-file", {"name": name, "mimeType": "text/plain", "buffer": TEXT}
        )
        page.click("#upload")
        expect(page.locator("#datasets tbody tr").first).to_contain_text(name)
    expect(page.locator("#datasets tbody tr")).to_have_count(2)

    # A CSV's summary: its data rows and columns, and the classes its labels make.
    csv = b"label,x1,x2\n0,0.5,1\n9,-2,3e-2\n"
    page.set_input_files(
        "#dataset-file", {"name": "digits.csv", "mimeType": "text/csv", "buffer": csv}
    )
    page.click("#upload")
    newest = page.locator("#datasets tbody tr").first
    expect(newest).to_contain_text("digits.csv")
    expect(newest.locator("td.contents")).to_have_text("2 rows, 3 columns, 10 classes")
