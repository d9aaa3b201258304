"""``flask --app pneumonia_web users ...``: create, disable, enable, reset and list accounts."""

from __future__ import annotations

import os
import time

import click
import redis
from flask import Flask
from flask.cli import AppGroup

from pneumonia_web import users

users_cli = AppGroup("users", help="Manage the accounts of the web UI.")


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@users_cli.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(users.ROLES), default="clinician", show_default=True)
@click.option("--password", help="Leave out to generate one (printed once).")
@click.option("--password-env", metavar="VAR", help="Read the password from this variable.")
@click.option("--replace", is_flag=True, help="Reset role and password if the user exists.")
@click.option("--wait", type=float, default=0, help="Seconds to wait for the UI's Redis.")
def create(
    name: str, role: str, password: str | None, password_env: str | None, replace: bool, wait: float
) -> None:
    """Create user NAME."""
    if password_env:
        password = os.environ.get(password_env) or _fail(ValueError(f"${password_env} is empty"))
    generated = password is None
    password = password or users.generate_password()
    _wait_for_redis(wait)
    try:
        user = users.create(name, role, password, replace=replace)
    except users.UserError as exc:
        _fail(exc)
    click.echo(f"user {user.name} ({user.role}) ready")
    if generated:
        click.echo(f"password: {password}")


def _wait_for_redis(seconds: float) -> None:
    """Let `make up` create the demo account while Redis is still starting."""
    from pneumonia_web.db import get_redis

    deadline = time.monotonic() + seconds
    while True:
        try:
            get_redis().ping()
            return
        except redis.ConnectionError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


@users_cli.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable user NAME and end their sessions."""
    try:
        users.set_disabled(name, True)
    except users.UserError as exc:
        _fail(exc)
    click.echo(f"user {name} disabled")


@users_cli.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Enable user NAME again."""
    try:
        users.set_disabled(name, False)
    except users.UserError as exc:
        _fail(exc)
    click.echo(f"user {name} enabled")


@users_cli.command("reset-password")
@click.argument("name")
@click.option("--password", help="Leave out to generate one (printed once).")
def reset_password(name: str, password: str | None) -> None:
    """Set a new password for NAME and end their sessions."""
    generated = password is None
    password = password or users.generate_password()
    try:
        users.set_password(name, password)
    except users.UserError as exc:
        _fail(exc)
    click.echo(f"password of {name} reset")
    if generated:
        click.echo(f"password: {password}")


@users_cli.command("list")
def list_users() -> None:
    """Print every account: name, role, state."""
    for user in users.all_users():
        click.echo(f"{user.name}\t{user.role}\t{'disabled' if user.disabled else 'active'}")


def init_app(app: Flask) -> None:
    """Register the ``users`` command group."""
    app.cli.add_command(users_cli)
