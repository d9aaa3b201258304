"""The accounts CLI and the production settings guard."""

from __future__ import annotations

import pytest

from tests.web.conftest import web_config


def test_create_prints_a_generated_password(app, runner):
    from pneumonia_web import users

    result = runner.invoke(args=["users", "create", "Dr.Who", "--role", "admin"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ")[1].strip()
    with app.app_context():
        user = users.authenticate("dr.who", password)
    assert user is not None and user.role == "admin"


def test_create_refuses_duplicates_unless_replace(runner):
    args = ["users", "create", "bob", "--password", "long enough pw"]
    assert runner.invoke(args=args).exit_code == 0
    again = runner.invoke(args=args)
    assert again.exit_code != 0 and "already exists" in again.output
    assert runner.invoke(args=[*args, "--replace"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "x y", "--password", "long enough pw"], "user names are"),
        (["users", "create", "bob", "--password", "short"], "at least 10"),
        (["users", "create", "bob", "--role", "root"], "Invalid value"),
        (["users", "disable", "ghost"], "no user called"),
        (["users", "reset-password", "ghost"], "no user called"),
    ],
)
def test_invalid_commands_fail_with_a_reason(runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output


def test_disable_enable_and_reset(app, runner):
    from pneumonia_web import users

    runner.invoke(args=["users", "create", "eve", "--password", "first password"])
    assert runner.invoke(args=["users", "disable", "eve"]).exit_code == 0
    with app.app_context():
        assert users.authenticate("eve", "first password") is None
    assert runner.invoke(args=["users", "enable", "eve"]).exit_code == 0
    result = runner.invoke(args=["users", "reset-password", "eve"])
    new = result.output.split("password: ")[1].strip()
    with app.app_context():
        assert users.authenticate("eve", "first password") is None
        assert users.authenticate("eve", new) is not None
    listing = runner.invoke(args=["users", "list"]).output
    assert "eve\tclinician\tactive" in listing


def test_passwords_are_stored_as_scrypt_hashes(app, runner, redis_url):
    import redis as redis_lib

    runner.invoke(args=["users", "create", "frank", "--password", "plain text pw"])
    r = redis_lib.Redis.from_url(app.config["WEB_REDIS_URL"], decode_responses=True)
    stored = r.hget("pneumonia-web:user:frank", "password_hash")
    assert stored.startswith("scrypt:") and "plain text pw" not in stored


@pytest.mark.parametrize("missing", ["SECRET_KEY", "API_TOKEN"])
def test_production_refuses_to_start_without_secrets(redis_url, missing):
    from pneumonia_web import create_app
    from pneumonia_web.config import ConfigError

    config = web_config(redis_url, APP_ENV="production", API_TOKEN="x" * 32, SECRET_KEY="y" * 32)
    config[missing] = ""
    with pytest.raises(ConfigError, match=missing):
        create_app(config)


def test_production_starts_with_real_secrets(redis_url):
    from pneumonia_web import create_app

    config = web_config(redis_url, APP_ENV="production", API_TOKEN="x" * 32, SECRET_KEY="y" * 32)
    assert create_app(config).config["SESSION_COOKIE_SECURE"] is True


def test_create_reads_the_password_from_an_environment_variable(app, runner, monkeypatch):
    from pneumonia_web import users

    monkeypatch.setenv("DEMO_PASSWORD", "from the environment")
    args = ["users", "create", "demo", "--role", "admin", "--password-env", "DEMO_PASSWORD"]
    result = runner.invoke(args=[*args, "--replace", "--wait", "5"])
    assert result.exit_code == 0, result.output
    assert "from the environment" not in result.output  # a given password is never echoed
    with app.app_context():
        assert users.authenticate("demo", "from the environment").role == "admin"
    monkeypatch.setenv("DEMO_PASSWORD", "")
    assert runner.invoke(args=args).exit_code != 0
