"""Keeping credentials out of what users see: error messages, metadata, logs."""

from __future__ import annotations

import re

_USERINFO_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]*)@")


def redact(text: str, url: str) -> str:
    """`text` without `url`'s password, wherever the URL or the password itself appears in it."""
    password = _USERINFO_PASSWORD.search(url)
    if password and password.group(1):
        text = text.replace(password.group(1), "***")
    return text
