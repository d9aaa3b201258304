"""User accounts in the UI's Redis: a hash per user, a strong (scrypt) password hash.

Each user carries an ``epoch`` that is part of their session id: disabling a user or
resetting a password bumps it, which ends every session they already have.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

from flask import current_app
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from pneumonia_web.db import get_redis, keys

ROLES = ("clinician", "admin")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
# Checked against when the user does not exist, so both paths take as long (per hash method).
_DUMMY_HASHES: dict[str, str] = {}


class UserError(ValueError):
    """A user operation that cannot be done (bad name, role, password or unknown user)."""


@dataclass
class User(UserMixin):
    """One account, as Flask-Login sees it."""

    name: str
    role: str = "clinician"
    disabled: bool = False
    epoch: int = 0
    created_at: int = 0

    @property
    def is_active(self) -> bool:
        return not self.disabled

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def get_id(self) -> str:
        """Session id: name and epoch, so a bumped epoch logs every session out."""
        return f"{self.name}:{self.epoch}"


def check_name(name: str) -> str:
    """User names are lower-case letters, digits, '.', '_' and '-' (2-64 characters)."""
    name = (name or "").strip().lower()
    if not _NAME.match(name):
        raise UserError("user names are 2-64 of a-z, 0-9, '.', '_', '-' (starting with a-z/0-9)")
    return name


def _check_password(password: str) -> None:
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password) < minimum:
        raise UserError(f"passwords need at least {minimum} characters")


def generate_password() -> str:
    """A random password to hand over once (about 96 bits)."""
    return secrets.token_urlsafe(12)


def _hash(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH"])


def get(name: str) -> User | None:
    """The user called ``name``, or None."""
    try:
        name = check_name(name)
    except UserError:
        return None
    data = get_redis().hgetall(keys().user(name))
    if not data:
        return None
    return User(
        name=name,
        role=data.get("role", "clinician"),
        disabled=data.get("disabled") == "1",
        epoch=int(data.get("epoch", 0)),
        created_at=int(data.get("created_at", 0)),
    )


def load(session_id: str) -> User | None:
    """Flask-Login's user loader: the user if the session's epoch is still current."""
    name, _, epoch = session_id.rpartition(":")
    user = get(name)
    if user is None or user.disabled or str(user.epoch) != epoch:
        return None
    return user


def authenticate(name: str, password: str) -> User | None:
    """The user when the password matches and the account is enabled; else None."""
    user = get(name)
    stored = get_redis().hget(keys().user(user.name), "password_hash") if user else None
    if not stored:
        method = current_app.config["PASSWORD_HASH"]
        if method not in _DUMMY_HASHES:
            _DUMMY_HASHES[method] = _hash(secrets.token_hex(16))
        stored = _DUMMY_HASHES[method]
    ok = check_password_hash(stored, password or "")
    if not ok or user is None or user.disabled:
        return None
    return user


def create(name: str, role: str, password: str, replace: bool = False) -> User:
    """Create a user (or, with ``replace``, reset an existing one's role and password)."""
    name = check_name(name)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    _check_password(password)
    r, key = get_redis(), keys().user(name)
    if r.exists(key) and not replace:
        raise UserError(f"user {name!r} already exists (use reset-password, or --replace)")
    pipe = r.pipeline(transaction=True)
    pipe.hsetnx(key, "created_at", int(time.time()))
    pipe.hset(key, mapping={"role": role, "password_hash": _hash(password), "disabled": "0"})
    pipe.hincrby(key, "epoch", 1)
    pipe.sadd(keys().users, name)
    pipe.execute()
    return get(name)


def set_password(name: str, password: str) -> User:
    """Replace a password, re-enable nothing, and end the user's sessions."""
    user = _existing(name)
    _check_password(password)
    pipe = get_redis().pipeline(transaction=True)
    pipe.hset(keys().user(user.name), "password_hash", _hash(password))
    pipe.hincrby(keys().user(user.name), "epoch", 1)
    pipe.execute()
    return get(user.name)


def set_disabled(name: str, disabled: bool = True) -> User:
    """Disable (or enable) a user; disabling ends their sessions at once."""
    user = _existing(name)
    pipe = get_redis().pipeline(transaction=True)
    pipe.hset(keys().user(user.name), "disabled", "1" if disabled else "0")
    pipe.hincrby(keys().user(user.name), "epoch", 1)
    pipe.execute()
    return get(user.name)


def end_sessions(name: str) -> None:
    """End every session of ``name`` on every device (logout does this: a copied cookie
    stops working along with the one that logged out)."""
    user = get(name)
    if user is not None:
        get_redis().hincrby(keys().user(user.name), "epoch", 1)


def all_users() -> list[User]:
    """Every user, sorted by name."""
    names = sorted(get_redis().smembers(keys().users))
    return [u for u in (get(n) for n in names) if u is not None]


def _existing(name: str) -> User:
    user = get(name)
    if user is None:
        raise UserError(f"no user called {name!r}")
    return user
