"""The server-side commands: `lagtrain db upgrade`, `lagtrain admin create-user`, and
`lagtrain server`'s refusal of a database it cannot use."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from service.cli import app
from service.store.db import make_engine, make_sessionmaker
from service.store.migrate import downgrade, upgrade
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
    token = created.output.strip().splitlines()[-1]
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
    finally:
        engine.dispose()
    assert (event.action, event.target) == ("user.created", f"user:{user.id}")
    assert event.detail == {"name": "dora", "role": "admin"}
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
