"""The client commands' answers to ordinary mistakes: one line on stderr naming the
problem and a non-zero exit, never a traceback. None of these needs a server: each
mistake is caught before a request, or is the missing server itself."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from service.cli import app
from service.cli_common import binary_size, one_line


def closed_port_url() -> str:
    """A loopback URL where nothing listens: a port the kernel just handed out, closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(args: list[str], tmp_path: Path, **env: str | None) -> Result:
    # No token file in tmp_path's .lagtrain: each test chooses LAGTRAIN_TOKEN itself.
    env = {"LAGTRAIN_URL": closed_port_url(), "LAGTRAIN_TOKEN": "t" * 40, **env}
    return CliRunner().invoke(app, args, env=env)


def error_line(result: Result, code: int = 1) -> str:
    """The command's error: one line on stderr, after a clean exit with `code`."""
    assert result.exit_code == code, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("command", ["submit", "sweep"])
def test_a_spec_that_is_not_yaml_is_named_with_its_line_and_column(
    command: str, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\ntask: {kind: adding\n")  # the { is never closed
    line = error_line(run([command, str(spec)], tmp_path))
    assert f"{spec}: invalid YAML at line 3, column 1: expected ',' or '}}'" in line
    assert "while parsing a flow mapping at line 2, column 7" in line


def test_a_spec_that_repeats_a_key_is_refused_naming_both_lines(tmp_path: Path) -> None:
    # YAML 1.1's loader let the second task replace the first, and the job ran it.
    spec = tmp_path / "twice.yaml"
    spec.write_text("task: {kind: adding}\nschedule: {rounds: 5}\ntask: {kind: copy_memory}\n")
    line = error_line(run(["submit", str(spec)], tmp_path))
    assert (
        f"{spec}: invalid YAML at line 3, column 1: found the key 'task' a second time "
        "(first at line 1): the second would replace the first"
    ) in line


def test_a_spec_given_to_the_other_command_says_which_to_use(tmp_path: Path) -> None:
    """A sweep file given to `submit` (or a JobSpec to `sweep`) was 8-10 lines of the
    server's "Extra inputs are not permitted"; now one line naming the command, said
    before any request (nothing listens at LAGTRAIN_URL)."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("base: {task: {kind: adding}}\nparameters: []\ntrials: 4\n")
    job = tmp_path / "job.yaml"
    job.write_text("task: {kind: adding}\n")
    line = error_line(run(["submit", str(sweep)], tmp_path))
    assert line.endswith("is a sweep spec (it has `base`): submit it with `lagtrain sweep`")
    line = error_line(run(["sweep", str(job)], tmp_path))
    assert line.endswith("submit it with `lagtrain submit`") and "is a JobSpec" in line


@pytest.mark.parametrize(
    ("command", "text", "where"),
    [
        ("submit", "task: {kind: adding}\noptimizer: {lr: .nan}\n", "optimizer.lr is nan"),
        ("submit", "schedule: {rounds: .inf}\n", "schedule.rounds is inf"),
        ("sweep", "parameters: {a: {choices: [1, -.inf]}}\n", "parameters.a.choices[1] is -inf"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_field(
    command: str, text: str, where: str, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    line = error_line(run([command, str(spec)], tmp_path))
    # Refused before any request: the unreachable server is never mentioned.
    assert line == f"error: {spec}: {where}: non-finite numbers (NaN, infinity) are not allowed"


def test_a_date_yaml_read_from_an_unquoted_value_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: 2024-01-01\n")
    line = error_line(run(["submit", str(spec)], tmp_path))
    assert "name is 2024-01-01 (YAML read a date" in line and "quote it" in line


@pytest.mark.parametrize(
    "args",
    [
        ["jobs"],
        ["submit", "SPEC"],
        ["watch", "1"],
        ["cancel", "1"],
        ["metrics", "1", "--csv"],
        ["download", "1"],
        ["sweeps"],
        ["sweep-watch", "1"],
        ["sweep-cancel", "1"],
        ["demo", "--rounds", "4"],
    ],
)
def test_a_server_that_cannot_be_reached_is_one_line(args: list[str], tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: {kind: adding}\n")
    url = closed_port_url()
    args = [str(spec) if a == "SPEC" else a for a in args]
    line = error_line(run(args, tmp_path, LAGTRAIN_URL=url))
    assert line.startswith(f"error: cannot reach the server at {url}: "), line
    assert "Connection refused" in line


def test_no_token_says_to_set_one_then_names_the_file_that_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user is told first to set their own token (a walkthrough's student was sent
    looking for the admin's file), then where the admin's was looked for."""
    monkeypatch.chdir(tmp_path)
    result = run(["jobs"], tmp_path, LAGTRAIN_TOKEN=None, LAGTRAIN_STATE_DIR=None)
    line = error_line(result, code=2)
    assert line.startswith("error: no token: set LAGTRAIN_TOKEN to the API token your lab's admin")
    assert f"the CLI reads {tmp_path / '.lagtrain' / 'admin-token'}, the admin token" in line
    assert "does not exist" in line


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_token_is_no_token(
    blank: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`LAGTRAIN_TOKEN=` was sent as "Bearer ": "lost the connection … Illegal header"."""
    monkeypatch.chdir(tmp_path)
    line = error_line(run(["jobs"], tmp_path, LAGTRAIN_TOKEN=blank, LAGTRAIN_STATE_DIR=None), 2)
    assert line.startswith("error: no token: set LAGTRAIN_TOKEN to the API token"), line


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "0.977 KiB"),
        (1536, "1.5 KiB"),
        (1023 * 1024 + 600, "1 MiB"),
    ],
)
def test_sizes_read_in_three_figures_at_most(count: int, shown: str) -> None:
    # "1,000 KiB" had four.
    assert binary_size(count) == shown


def test_a_422s_type_error_shows_the_value_received() -> None:
    """`rounds: 1e2` in a file is a number with a point (YAML 1.2): "Input should be a
    valid integer" alone left the user looking at a number (a walkthrough)."""
    detail = [
        {
            "type": "int_type",
            "loc": ["body", "schedule", "rounds"],
            "msg": "Input should be a valid integer",
            "input": 100.0,
        },
        {"type": "greater_than", "loc": ["body", "optimizer", "lr"], "msg": "x", "input": -1},
        {"type": "int_type", "loc": ["body", "model"], "msg": "y", "input": {"a": 1}},
    ]
    assert one_line(detail) == (
        "schedule.rounds: Input should be a valid integer (got 100.0); optimizer.lr: x; model: y"
    )


def test_a_tagged_number_without_digits_is_named_with_its_place(tmp_path: Path) -> None:
    """`!!int 0x` raised int()'s ValueError: a traceback."""
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: {kind: adding}\nschedule: {seed: !!int 0x}\n")
    line = error_line(run(["submit", str(spec)], tmp_path))
    assert line == f"error: {spec}: invalid YAML at line 2, column 18: '0x' is not an integer"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["user-add", "bob", "--share", "inf"], "error: --share inf: not a finite number"),
        (["user-set", "bob", "--share", "nan"], "error: --share nan: not a finite number"),
        (
            ["user-add", "bob", "--quota", "max_cpus=inf"],
            "error: --quota 'max_cpus=inf': 'inf' is not a finite number",
        ),
        (
            ["user-set", "bob", "--quota", "max_job_hours=NaN"],
            "error: --quota 'max_job_hours=NaN': 'NaN' is not a finite number",
        ),
    ],
)
def test_a_share_or_quota_that_is_not_finite_is_a_usage_error(
    args: list[str], says: str, tmp_path: Path
) -> None:
    """JSON has no inf or nan: httpx refused the request body with a traceback."""
    assert error_line(run(args, tmp_path), code=2) == says


def test_a_spec_nested_too_deep_or_empty_is_one_line(tmp_path: Path) -> None:
    """2000 levels were a RecursionError; an empty file the server's "Field required"."""
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\ntask: " + "[" * 2000 + "]" * 2000 + "\n")
    line = error_line(run(["submit", str(deep)], tmp_path))
    assert line == (
        f"error: {deep}: line 2: nested deeper than 16 levels (a spec's fields are 2 deep)"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    line = error_line(run(["sweep", str(empty)], tmp_path))
    assert line == f"error: {empty} is empty: a spec is a mapping of fields (e.g. task: {{...}})"
