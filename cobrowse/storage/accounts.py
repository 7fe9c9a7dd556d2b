"""Accounts: agents, supervisors and admins with argon2id password hashes.

All functions take the :class:`~cobrowse.storage.db.Database` first. Problems a
user can fix (bad username, short password, unknown or duplicate user) raise
:class:`AccountError` with a message fit for the command line.

Hashing is argon2-cffi's ``PasswordHasher`` (argon2id, RFC 9106 low-memory
parameters: 64 MiB, 3 passes). Each hash or check takes tens of milliseconds of
CPU and 64 MiB, so it runs in a worker thread (the event loop stays responsive)
and at most ``os.cpu_count()`` run at once (memory stays bounded when many
logins arrive together). Tests can swap in cheap parameters with
:func:`set_password_hasher`.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .db import Database
from .models import Role, User, UserDepartment, utcnow

__all__ = [
    "AccountError",
    "DemoAccount",
    "USERNAME_PATTERN",
    "MIN_PASSWORD_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "DEMO_AGENT",
    "DEMO_SUPERVISOR",
    "set_password_hasher",
    "normalize_username",
    "validate_password",
    "parse_role",
    "create_user",
    "authenticate",
    "get_user",
    "get_user_by_id",
    "get_users_by_id",
    "list_users",
    "set_disabled",
    "end_logins",
    "set_password",
    "normalize_email",
    "normalize_departments",
    "set_email",
    "set_transcripts",
    "set_departments",
    "user_departments",
    "ensure_demo_agent",
    "ensure_demo_accounts",
]

USERNAME_PATTERN = re.compile(r"[a-z0-9._-]{2,64}")
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing a megabyte "password" is a cheap denial of service
MAX_DISPLAY_NAME_LENGTH = 100
MAX_EMAIL_LENGTH = 254
# Loose on purpose (one "@", no spaces or list punctuation): the mail server decides.
EMAIL_PATTERN = re.compile(r'[^\s@<>(),;:"\[\]\\]{1,64}@[^\s@<>(),;:"\[\]\\.]+(\.[^\s@<>(),;:"\[\]\\.]+)*')
DEPARTMENT_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")  # as [[department]] id in the config
DEMO_AGENT = "demo-agent"
DEMO_SUPERVISOR = "demo-supervisor"

_hasher = PasswordHasher()
_dummy: tuple[PasswordHasher, str] | None = None  # (hasher, a hash of a random password)
_hash_slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


class AccountError(Exception):
    """A problem with an account request, e.g. an invalid username or a duplicate."""


class DemoAccount(NamedTuple):
    username: str
    password: str
    role: Role


# -- validation ----------------------------------------------------------------


def normalize_username(username: str) -> str:
    """The stored form of a username (trimmed, lowercased); AccountError if invalid."""
    name = username.strip().lower() if isinstance(username, str) else ""
    if not USERNAME_PATTERN.fullmatch(name):
        raise AccountError(
            f"invalid username {username!r}: use 2 to 64 characters a-z, 0-9, '.', '_' or '-'"
        )
    return name


def validate_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"password too long: use at most {MAX_PASSWORD_LENGTH} characters")


def parse_role(role: Role | str) -> Role:
    try:
        return Role(role.strip().lower() if isinstance(role, str) else role)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise AccountError(f"invalid role {role!r}: choose one of {choices}") from None


def normalize_email(email: str | None) -> str | None:
    """The stored form of an account's email (trimmed); None for none ('' or None).
    AccountError if it is not an address."""
    address = email.strip() if isinstance(email, str) else ""
    if not address:
        return None
    if len(address) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(address):
        raise AccountError(f"invalid email address {email!r}")
    return address


def normalize_departments(departments: Iterable[str]) -> list[str]:
    """Department ids lowercased, checked, without repeats, sorted; AccountError if one is invalid."""
    result = set()
    for department in departments:
        name = department.strip().lower() if isinstance(department, str) else ""
        if not DEPARTMENT_PATTERN.fullmatch(name):
            raise AccountError(
                f"invalid department {department!r}: use 1 to 32 characters a-z, 0-9, '_' or '-'"
            )
        result.add(name)
    return sorted(result)


def _clean_display_name(display_name: str | None, username: str) -> str:
    if display_name is None:
        return username
    name = " ".join(display_name.split())  # no newlines or runs of spaces
    if not name:
        return username
    if len(name) > MAX_DISPLAY_NAME_LENGTH:
        raise AccountError(f"display name too long: use at most {MAX_DISPLAY_NAME_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise AccountError("display name contains control characters")
    return name


# -- hashing -------------------------------------------------------------------


def set_password_hasher(hasher: PasswordHasher) -> PasswordHasher:
    """Use ``hasher`` for new hashes and rehash checks; returns the previous one.

    For tests (``PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)``);
    production keeps the default.
    """
    global _hasher
    previous, _hasher = _hasher, hasher
    return previous


def _hash_sync(password: str) -> str:
    with _hash_slots:
        return _hasher.hash(password)


def _verify_sync(password_hash: str, password: str) -> bool:
    with _hash_slots:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def _verify_dummy_sync(password: str) -> None:
    global _dummy
    hasher = _hasher
    if _dummy is None or _dummy[0] is not hasher:
        _dummy = (hasher, _hash_sync(secrets.token_urlsafe(16)))
    _verify_sync(_dummy[1], password)


async def _hash(password: str) -> str:
    return await asyncio.to_thread(_hash_sync, password)


# -- queries -------------------------------------------------------------------


async def get_user(db: Database, username: str) -> User | None:
    """The user with this username (any case), or None (also for an invalid name)."""
    try:
        name = normalize_username(username)
    except AccountError:
        return None
    async with db.session(read_only=True) as s:
        return await s.scalar(sa.select(User).where(User.username == name))


async def get_user_by_id(db: Database, user_id: int) -> User | None:
    async with db.session(read_only=True) as s:
        return await s.get(User, user_id)


async def get_users_by_id(db: Database, user_ids: Iterable[int]) -> dict[int, User]:
    """The users with these ids (one query), by id; unknown ids are left out."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    found: dict[int, User] = {}
    async with db.session(read_only=True) as s:
        for start in range(0, len(ids), 500):  # bound the statement's parameters
            for user in await s.scalars(sa.select(User).where(User.id.in_(ids[start:start + 500]))):
                found[user.id] = user
    return found


async def list_users(db: Database, *, include_disabled: bool = True) -> list[User]:
    """All users, by username."""
    query = sa.select(User).order_by(User.username)
    if not include_disabled:
        query = query.where(User.disabled.is_(False))
    async with db.session(read_only=True) as s:
        return list(await s.scalars(query))


# -- changes -------------------------------------------------------------------


async def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role | str = Role.agent,
    display_name: str | None = None,
    *,
    email: str | None = None,
    transcripts: bool = False,
    departments: Iterable[str] = (),
) -> User:
    """Create an account. AccountError for an invalid or taken username, a short password, a bad role,
    an invalid email or department, or ``transcripts`` without an email (where would they go?)."""
    name = normalize_username(username)
    validate_password(password)
    role = parse_role(role)
    shown = _clean_display_name(display_name, name)
    address = normalize_email(email)
    if transcripts and address is None:
        raise AccountError("chat transcripts need an email address (--email)")
    department_ids = normalize_departments(departments)
    password_hash = await _hash(password)
    user = User(username=name, display_name=shown, role=role, password_hash=password_hash, disabled=False,
                email=address, transcripts=bool(transcripts))
    try:
        async with db.transaction() as s:
            if await s.scalar(sa.select(User.id).where(User.username == name)) is not None:
                raise AccountError(f"user {name!r} already exists")
            s.add(user)
            await s.flush()  # the departments refer to its id
            s.add_all(UserDepartment(user_id=user.id, department=d) for d in department_ids)
    except sa.exc.IntegrityError:  # created concurrently (e.g. by another process)
        raise AccountError(f"user {name!r} already exists") from None
    return user


async def set_password(db: Database, username: str, password: str) -> User:
    """Replace a user's password. AccountError for an unknown user or a short password."""
    name = normalize_username(username)
    validate_password(password)
    password_hash = await _hash(password)
    async with db.transaction() as s:
        user = await _require(s, name)
        user.password_hash = password_hash
    return user


async def set_disabled(db: Database, username: str, disabled: bool = True) -> User:
    """Disable (or with ``disabled=False`` enable) an account; a disabled user cannot log in."""
    name = normalize_username(username)
    async with db.transaction() as s:
        user = await _require(s, name)
        user.disabled = bool(disabled)
    return user


async def end_logins(db: Database, user_id: int) -> None:
    """Void every console login of this user issued until now (logging out)."""
    async with db.transaction() as s:
        user = await s.get(User, user_id)
        if user is not None:
            user.logins_valid_after = utcnow()


async def set_email(db: Database, username: str, email: str | None) -> User:
    """Set (or with None / '' remove) the address chat transcripts are mailed to.
    Removing it also turns transcripts off."""
    name = normalize_username(username)
    address = normalize_email(email)
    async with db.transaction() as s:
        user = await _require(s, name)
        user.email = address
        if address is None:
            user.transcripts = False
    return user


async def set_transcripts(db: Database, username: str, enabled: bool = True) -> User:
    """Opt in to (or out of) a mailed transcript of every chat the user takes part in."""
    name = normalize_username(username)
    async with db.transaction() as s:
        user = await _require(s, name)
        if enabled and not user.email:
            raise AccountError(f"{name!r} has no email address: set one first (--email)")
        user.transcripts = bool(enabled)
    return user


async def set_departments(db: Database, username: str, departments: Iterable[str]) -> list[str]:
    """Replace the departments a user serves (none: every department's chats); returns them."""
    name = normalize_username(username)
    department_ids = normalize_departments(departments)
    async with db.transaction() as s:
        user = await _require(s, name)
        await s.execute(sa.delete(UserDepartment).where(UserDepartment.user_id == user.id))
        s.add_all(UserDepartment(user_id=user.id, department=d) for d in department_ids)
    return department_ids


async def user_departments(db: Database, user_id: int) -> list[str]:
    """The departments a user serves, sorted."""
    async with db.session(read_only=True) as s:
        return list(await s.scalars(
            sa.select(UserDepartment.department).where(UserDepartment.user_id == user_id)
            .order_by(UserDepartment.department)
        ))


async def _require(s, name: str) -> User:
    user = await s.scalar(sa.select(User).where(User.username == name))
    if user is None:
        raise AccountError(f"no user named {name!r}")
    return user


async def authenticate(db: Database, username: str, password: str) -> User | None:
    """The user if the username and password match an enabled account, else None.

    Takes about the same time whether or not the user exists (an unknown user is
    checked against a dummy hash), so response times don't reveal usernames.
    A successful login records ``last_login_at`` and upgrades the hash if the
    hasher's parameters have changed since it was made.
    """
    if not isinstance(password, str) or not isinstance(username, str):
        return None
    try:
        name = normalize_username(username)
    except AccountError:
        name = None
    user = None
    if name is not None and len(password) <= MAX_PASSWORD_LENGTH:
        async with db.session(read_only=True) as s:
            user = await s.scalar(sa.select(User).where(User.username == name))
    if user is None:
        await asyncio.to_thread(_verify_dummy_sync, password[:MAX_PASSWORD_LENGTH])
        return None
    if not await asyncio.to_thread(_verify_sync, user.password_hash, password):
        return None
    if user.disabled:
        return None

    values: dict[str, object] = {"last_login_at": utcnow()}
    if _hasher.check_needs_rehash(user.password_hash):
        values["password_hash"] = await _hash(password)
    async with db.transaction() as s:
        # Only if nobody changed the password or disabled the account meanwhile.
        result = await s.execute(
            sa.update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash, User.disabled.is_(False))
            .values(**values)
        )
        if result.rowcount != 1:
            return None
    for key, value in values.items():
        setattr(user, key, value)
    return user


# -- the demo ------------------------------------------------------------------


async def ensure_demo_agent(
    db: Database, username: str = DEMO_AGENT, role: Role | str = Role.agent
) -> tuple[str, str]:
    """Create or reset a demo account with a fresh random password; returns (username, password).

    Every run resets the password (so it can be printed), the role, and enables the account.
    """
    name = normalize_username(username)
    role = parse_role(role)
    password = secrets.token_urlsafe(12)
    password_hash = await _hash(password)
    display = " ".join(part.capitalize() for part in name.split("-"))
    async with db.transaction() as s:
        user = await s.scalar(sa.select(User).where(User.username == name))
        if user is None:
            s.add(User(username=name, display_name=display, role=role, password_hash=password_hash))
        else:
            user.password_hash = password_hash
            user.role = role
            user.disabled = False
    return name, password


async def ensure_demo_accounts(db: Database) -> list[DemoAccount]:
    """``demo-agent`` (agent) and ``demo-supervisor`` (supervisor), with fresh passwords."""
    accounts = []
    for username, role in ((DEMO_AGENT, Role.agent), (DEMO_SUPERVISOR, Role.supervisor)):
        name, password = await ensure_demo_agent(db, username, role)
        accounts.append(DemoAccount(name, password, role))
    return accounts
