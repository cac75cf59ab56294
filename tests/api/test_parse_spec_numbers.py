"""The dashboard's spec parse and numbers without digits: `seed: 0x_` is text (it
read as an int, then int("0x", 0) raised: a 500), and a tagged value that is no
number is a 422 at its line."""

from __future__ import annotations

import httpx

from tests.api.conftest import Api, assert_json_error


def test_numbers_without_digits_are_text_or_a_422_never_a_500(api: Api) -> None:
    def parse(text: str) -> httpx.Response:
        response: httpx.Response = api.client.post(
            "/ui/parse-spec", json={"text": text}, headers=api.admin
        )
        return response

    read = parse("task: {kind: adding}\nschedule: {seed: 0x_, rounds: ._}\n")
    assert read.status_code == 200, read.text
    assert read.json()["spec"]["schedule"] == {"seed": "0x_", "rounds": "._"}
    refused = assert_json_error(parse("task: {kind: adding}\nschedule:\n  seed: !!int 0o_\n"), 422)
    assert refused[0]["msg"] == "not valid YAML/JSON: '0o_' is not an integer"
    assert refused[0]["line"] == 3
