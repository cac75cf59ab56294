"""Answers that are not the v1 API's: a proxy's redirect, an SSO login page, a
proxy's error page, JSON of another shape. Each is one line and exit 1, never a
traceback (a 301 was a TypeError, an HTML page a JSONDecodeError)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.client import ApiError, Client
from tests.cli_mock import TOKEN, URL, answering, invoke, one_error

HTML = "<!doctype html><html><body>Sign in</body></html>"


def test_a_redirect_names_where_to_point_lagtrain_url(monkeypatch: pytest.MonkeyPatch) -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        https = request.url.copy_with(scheme="https")
        return httpx.Response(301, headers={"Location": str(https)})

    answering(monkeypatch, proxy)
    line = one_error(invoke(["jobs"]))
    assert line.startswith("error 301: the server redirects to https://lagtrain.test/v1/jobs?")
    assert line.endswith(": set LAGTRAIN_URL to https://lagtrain.test"), line


def test_a_redirect_elsewhere_is_named_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answering(monkeypatch, lambda _r: httpx.Response(302, headers={"Location": "/login"}))
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: {kind: adding}\n")
    line = one_error(invoke(["submit", str(spec)]))
    assert line == (
        f"error 302: the server redirects to {URL}/login: is LAGTRAIN_URL the server's?"
    )


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (httpx.Response(200, html=HTML), "text/html; charset=utf-8"),
        (httpx.Response(200, json=[1, 2]), "application/json"),
    ],
)
def test_a_200_that_is_no_api_object_is_one_line(
    answer: httpx.Response, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, lambda _r: answer)
    line = one_error(invoke(["show", "3"]))
    assert line == (
        f"error 200: not a lagtrain API answer (content-type {kind}): is LAGTRAIN_URL the server's?"
    )


def test_a_page_without_its_data_list_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    answering(monkeypatch, lambda _r: httpx.Response(200, json={"items": []}))
    line = one_error(invoke(["jobs"]))
    assert "not a lagtrain API answer" in line


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (httpx.Response(502, html=HTML), "error 502: Bad Gateway: not a lagtrain API answer"),
        (httpx.Response(500, json=["boom"]), "error 500: Internal Server Error: not a lagtrain"),
        (httpx.Response(404, json={"detail": "job 3 not found"}), "error 404: job 3 not found"),
    ],
)
def test_an_error_is_its_detail_or_said_to_be_no_api_answer(
    answer: httpx.Response, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, lambda _r: answer)
    line = one_error(invoke(["show", "3"]))
    assert line.startswith(said), line
    assert "<html" not in line


def test_the_streamed_answers_errors_are_their_detail_not_raw_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A checkpoint's download and a job's event stream: "error 404: {"detail": …}"."""
    answers = {
        "/v1/jobs/1": httpx.Response(200, json={"id": 1, "status": "running", "progress": {}}),
        "/v1/jobs/1/checkpoints": httpx.Response(
            200, json={"data": [{"id": 5, "round": 3, "sha256": "ab" * 32}]}
        ),
        "/v1/jobs/1/checkpoints/5": httpx.Response(404, json={"detail": "checkpoint 5 is gone"}),
        "/v1/jobs/1/events": httpx.Response(403, json={"detail": "not your job"}),
    }
    answering(monkeypatch, lambda request: answers[request.url.path])
    line = one_error(invoke(["download", "1", "-o", f"{tmp_path}/"]))
    assert line == "error 404: checkpoint 5 is gone"
    assert one_error(invoke(["watch", "1"])) == "error 403: not your job"


def test_an_empty_200_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy's empty 200: callers index the body (an AttributeError traceback)."""
    answering(monkeypatch, lambda _r: httpx.Response(200, content=b""))
    assert "not a lagtrain API answer" in one_error(invoke(["jobs"]))
    assert "not a lagtrain API answer" in one_error(invoke(["show", "1"]))


def test_a_redirect_keeps_lagtrain_url_s_own_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(301, headers={"Location": str(request.url.copy_with(scheme="https"))})

    answering(monkeypatch, proxy)
    line = one_error(invoke(["jobs"], LAGTRAIN_URL=f"{URL}/lagtrain"))
    assert line.endswith(": set LAGTRAIN_URL to https://lagtrain.test/lagtrain"), line


def test_an_events_answer_that_is_no_event_stream_is_refused() -> None:
    """A login page at the events route yielded no event, and `follow` (watch)
    reconnected to it for ever: its outage clock starts only on errors."""
    transport = httpx.MockTransport(lambda _r: httpx.Response(200, html=HTML))
    client = Client(URL, TOKEN, http=httpx.Client(base_url=URL, transport=transport))
    with pytest.raises(ApiError, match=r"not a lagtrain API answer \(content-type text/html"):
        list(client.follow(1, sleep=lambda _s: None))


def test_a_gateway_s_error_page_does_not_blame_lagtrain_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy's 502 page while the server restarts: the URL is right."""
    answering(monkeypatch, lambda _r: httpx.Response(500, html=HTML))
    line = one_error(invoke(["show", "3"]))
    assert line.endswith(": a proxy's or gateway's error"), line
    assert "LAGTRAIN_URL" not in line


def test_a_url_ending_in_v1_is_named_on_the_framework_s_404(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LAGTRAIN_URL=http://host:port/v1 made every path /v1/v1/…, and the framework's
    404 said only "Not Found" (a walkthrough); a lagtrain 404 names what it did not
    find and is left as it is."""
    answering(monkeypatch, lambda _r: httpx.Response(404, json={"detail": "Not Found"}))
    line = one_error(invoke(["jobs"]))
    assert line.startswith("error 404: Not Found: no such route /v1/jobs"), line
    assert line.endswith("LAGTRAIN_URL is the server's root (http://host:port, without /v1)")
    answering(monkeypatch, lambda _r: httpx.Response(404, json={"detail": "no job 3"}))
    assert one_error(invoke(["show", "3"])) == "error 404: no job 3"
