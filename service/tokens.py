"""Bearer tokens: random, shown once, stored as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "osk_"


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe, with a prefix that says what it is."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
