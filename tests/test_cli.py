"""The server-side commands: `lagtrain db upgrade`, `lagtrain admin create-user`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from service.cli import app
from service.store.db import make_engine, make_sessionmaker
from service.store.models import ApiToken, User
from service.store.users import hash_token


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
