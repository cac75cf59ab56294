"""The server-side commands: `lagtrain db upgrade`, `lagtrain admin create-user`, and
`lagtrain server`'s refusal of a database it cannot use."""

from __future__ import annotations

import logging
import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner, Result

from service.cli import app
from service.store.db import make_engine, make_sessionmaker
from service.store.migrate import current_revisions, downgrade, head_revisions, upgrade
from service.store.models import ApiToken, AuditEvent, User
from service.store.users import hash_token
from tests.e2e.conftest import free_port


def test_db_upgrade_then_create_user_prints_a_working_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"LAGTRAIN_DATABASE_URL": url}
    runner = CliRunner()
    upgraded = runner.invoke(app, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output

    created = runner.invoke(app, ["admin", "create-user", "carol", "--admin"], env=env)
    assert created.exit_code == 0, created.output
    # The token alone on stdout (TOKEN=$(lagtrain admin create-user …)), the note on stderr.
    token = created.stdout.strip()
    assert "\n" not in token and "created user 'carol'" in created.stderr
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            user = session.scalars(select(User).where(User.name == "carol")).one()
            hashes = set(session.scalars(select(ApiToken.token_sha256)))
        assert user.role == "admin" and hash_token(token) in hashes
    finally:
        engine.dispose()

    again = runner.invoke(app, ["admin", "create-user", "carol"], env=env)
    assert again.exit_code == 1 and "already exists" in again.output
    bad = runner.invoke(app, ["admin", "create-user", "no spaces allowed"], env=env)
    assert bad.exit_code == 2 and "invalid user name" in bad.output


def test_create_user_writes_the_audit_row_the_api_writes(db_url: str, clean_db: None) -> None:
    created = CliRunner().invoke(
        app, ["admin", "create-user", "dora", "--admin"], env={"LAGTRAIN_DATABASE_URL": db_url}
    )
    assert created.exit_code == 0, created.output
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            user = session.scalars(select(User).where(User.name == "dora")).one()
            (event,) = session.scalars(select(AuditEvent)).all()
            (token_id,) = session.scalars(select(ApiToken.id).where(ApiToken.user_id == user.id))
    finally:
        engine.dispose()
    assert (event.action, event.target) == ("user.created", f"user:{user.id}")
    assert event.detail == {"name": "dora", "role": "admin", "token_id": token_id}
    # No user of the service did it: the OS account that ran the command on this host.
    assert event.actor == f"cli:{pwd.getpwuid(os.geteuid()).pw_name}"
    assert event.actor_id is None


def refused(result: Result) -> str:
    """The one-line error of a command that stopped on a known problem."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    return result.stderr


@pytest.mark.parametrize("command", [["admin", "create-user", "erin"], ["server"], ["worker"]])
def test_commands_refuse_a_database_that_was_never_migrated(
    empty_db_url: str, tmp_path: Path, command: list[str]
) -> None:
    env = {"LAGTRAIN_DATABASE_URL": empty_db_url, "LAGTRAIN_STATE_DIR": str(tmp_path / "state")}
    if command == ["server"]:
        command = [*command, "--port", str(free_port())]
    stderr = refused(CliRunner().invoke(app, command, env=env))
    assert "lagtrain db upgrade" in stderr and "LAGTRAIN_DATABASE_URL" in stderr
    if empty_db_url.startswith("sqlite"):
        assert "does not exist" in stderr
        assert not (tmp_path / "lagtrain.db").exists(), "only `db upgrade` creates the file"
    else:
        assert "has no lagtrain schema" in stderr
        engine = make_engine(empty_db_url)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


@pytest.mark.timeout(60)  # without the check the server or worker would run on
@pytest.mark.parametrize("command", [["server"], ["worker"]])
def test_server_and_worker_refuse_an_artifacts_location_they_cannot_write(
    tmp_path: Path, command: list[str]
) -> None:
    """Uploads (server) and checkpoints (worker) go there: a location that refuses a
    write stops the process at start, in one line naming the setting, not every job
    at its first checkpoint. (A path under a regular file: refused even to root.)"""
    url = f"sqlite:///{tmp_path / 'lagtrain.db'}"
    upgrade(url)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {
        "LAGTRAIN_DATABASE_URL": url,
        "LAGTRAIN_STATE_DIR": str(tmp_path / "state"),
        "LAGTRAIN_ARTIFACTS_URL": str(blocker / "artifacts"),
    }
    if command == ["server"]:
        command = [*command, "--port", str(free_port())]
    stderr = refused(CliRunner().invoke(app, command, env=env))
    assert f"LAGTRAIN_ARTIFACTS_URL ({blocker / 'artifacts'}): cannot write there" in stderr


def test_reading_the_revision_logs_nothing(
    empty_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal of a never-migrated database is one line: alembic's "Context impl"
    and "Will assume … DDL" INFO lines no longer come before it."""
    caplog.set_level(logging.INFO)
    assert current_revisions(empty_db_url) == ()
    assert "Context impl" not in caplog.text and "DDL" not in caplog.text, caplog.text


def test_create_user_outside_a_project_leaves_no_database_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAGTRAIN_DATABASE_URL", raising=False)
    stderr = refused(CliRunner().invoke(app, ["admin", "create-user", "frank"]))
    assert f"{tmp_path / '.lagtrain' / 'lagtrain.db'} does not exist" in stderr
    assert list(tmp_path.iterdir()) == [], "no stray ./.lagtrain/lagtrain.db"


def test_create_user_refuses_a_schema_older_than_the_code(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url)
    downgrade(url, "-1")
    stderr = refused(
        CliRunner().invoke(
            app, ["admin", "create-user", "gina"], env={"LAGTRAIN_DATABASE_URL": url}
        )
    )
    assert "older than this lagtrain's" in stderr and "lagtrain db upgrade" in stderr


def test_db_upgrade_reports_the_revisions_and_refuses_an_unreachable_database(
    empty_db_url: str,
) -> None:
    """What `db upgrade` did (from which revision to which), and an unreachable
    database (compose's `migrate` step before PostgreSQL answers) as one line."""
    runner = CliRunner()
    head = ", ".join(head_revisions())
    env = {"LAGTRAIN_DATABASE_URL": empty_db_url}
    first = runner.invoke(app, ["db", "upgrade", "0004"], env=env)
    assert first.stdout.strip() == "database at revision 0004 (was empty)", first.output
    second = runner.invoke(app, ["db", "upgrade"], env=env)
    assert second.stdout.strip() == f"database at revision {head} (was 0004)", second.output
    again = runner.invoke(app, ["db", "upgrade"], env=env)
    assert again.stdout.strip() == f"database at revision {head} (unchanged)", again.output

    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/lagtrain"
    stderr = refused(runner.invoke(app, ["db", "upgrade"], env={"LAGTRAIN_DATABASE_URL": closed}))
    assert stderr.startswith(
        f"error: cannot connect to the database at {closed} (LAGTRAIN_DATABASE_URL): "
    ), stderr
    assert len(stderr.strip().splitlines()) == 1

    # A revision this code does not know, as target or as the database's own (an older
    # node's `db upgrade` in a rolling release): one line, not alembic's traceback.
    bogus = refused(runner.invoke(app, ["db", "upgrade", "bogus"], env=env)).strip()
    assert bogus == "error: cannot upgrade to 'bogus': Can't locate revision identified by 'bogus'"
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        engine.dispose()
    newer = refused(runner.invoke(app, ["db", "upgrade"], env=env)).strip()
    assert newer.startswith("error: the database at ") and newer.endswith(
        f"is at revision 9999, newer than this lagtrain knows (its newest is {head}): a newer "
        "release migrated it; run that release's `lagtrain db upgrade`"
    ), newer


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LAGTRAIN_PORT": "abc"}, "error: LAGTRAIN_PORT='abc': Input should be a valid integer"),
        (
            {"RAY_AUTH_MODE": "off"},
            "error: RAY_AUTH_MODE or LAGTRAIN_RAY_AUTH_MODE='off': Input should be",
        ),
        ({"LAGTRAIN_DATABASE_URL": "lab.db"}, "error: LAGTRAIN_DATABASE_URL: not a database URL"),
        # Other stores and drivers failed later, as a ModuleNotFoundError traceback.
        (
            {"LAGTRAIN_DATABASE_URL": "mysql://lab@localhost/lab"},
            "error: LAGTRAIN_DATABASE_URL: lagtrain runs on SQLite or PostgreSQL through "
            "psycopg 3, not 'mysql'",
        ),
        (
            {"LAGTRAIN_DATABASE_URL": "postgresql://lab@localhost/lab"},
            "error: LAGTRAIN_DATABASE_URL: lagtrain runs on SQLite or PostgreSQL through "
            "psycopg 3, not 'postgresql'",
        ),
        (
            {"LAGTRAIN_LEASE_SECONDS": "4", "LAGTRAIN_HEARTBEAT_SECONDS": "3"},
            "error: LAGTRAIN_LEASE_SECONDS (4) must be at least twice",
        ),
        (
            {"LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN": "tooshort-secret"},
            "error: LAGTRAIN_BOOTSTRAP_ADMIN_TOKEN must be at least 32 characters",
        ),
    ],
)
@pytest.mark.parametrize("command", [["server"], ["worker"], ["db", "upgrade"]])
def test_a_bad_setting_stops_a_command_with_a_line_naming_the_variable(
    tmp_path: Path, command: list[str], env: dict[str, str], expected: str
) -> None:
    env = {"LAGTRAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", **env}
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "tooshort-secret" not in result.output, "a secret is never echoed"
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("command", [["db", "upgrade"], ["server", "--embedded"]])
@pytest.mark.parametrize("where", ["closed port", "sqlite under a file"])
def test_the_migrating_commands_report_an_unusable_database_in_one_line(
    tmp_path: Path, command: list[str], where: str
) -> None:
    """`db upgrade` and `server --embedded` migrate before anything else starts (Ray,
    the dispatcher): a database they cannot open is one line, not a traceback."""
    if where == "closed port":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/lagtrain"
    else:
        (tmp_path / "a-file").write_text("not a folder")
        url = f"sqlite:///{tmp_path / 'a-file' / 'lab.db'}"
    env = {"LAGTRAIN_DATABASE_URL": url, "LAGTRAIN_PORT": str(free_port())}
    stderr = refused(CliRunner().invoke(app, command, env=env))
    assert stderr.startswith("error: cannot connect to the database at "), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.parametrize("port", ["99999", "0", "-5"])
def test_a_port_out_of_range_is_refused_before_anything_starts(tmp_path: Path, port: str) -> None:
    """`--port 99999` listened on 34463 (mod 65536), `--port 0` fell back to
    LAGTRAIN_PORT, `--port -5` failed after the whole start-up: a usage error now,
    with no database made."""
    env = {"LAGTRAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = CliRunner().invoke(app, ["server", "--embedded", "--port", port], env=env)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Invalid value for '--port'" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_worker_that_cannot_join_ray_gives_up_at_its_deadline_in_one_line(
    empty_db_url: str,
) -> None:
    """Nothing listening at RAY_ADDRESS: `ray.init` retried inside Ray for minutes,
    deaf to LAGTRAIN_RAY_CONNECT_SECONDS, printing only Ray's own warnings. Now a TCP
    probe fails each try, and after the deadline one line names the address, the
    setting and what to check."""
    upgrade(empty_db_url)
    address = f"127.0.0.1:{free_port()}"
    env = {
        "LAGTRAIN_DATABASE_URL": empty_db_url,
        "RAY_ADDRESS": address,
        "LAGTRAIN_RAY_CONNECT_SECONDS": "1",
    }
    # Its own process: this one may hold a Ray connection of another test's.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lagtrain")), "worker"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith(f"error: cannot join Ray at {address} within 1 s "), line
    assert "Connection refused" in line and "RAY_AUTH_MODE and token (RAY_AUTH_TOKEN" in line


def test_a_port_in_use_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    """Another server on the port: the start line, the schema, the admin's bootstrap
    and a local Ray all ran before uvicorn failed to bind (exit 3). Now one line, and
    nothing made."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {"LAGTRAIN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
        result = CliRunner().invoke(app, ["server", "--embedded", "--port", str(port)], env=env)
    line = refused(result).strip()
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), line
    assert "--port or LAGTRAIN_PORT" in line and len(line.splitlines()) == 1
    assert not (tmp_path / "x.db").exists()
