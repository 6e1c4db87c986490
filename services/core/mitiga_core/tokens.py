"""Bearer tokens compared in constant time: which of several named tokens a credential is (no web framework here,
so a transport-neutral module may ask)."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic import SecretStr


def bearer_name(value: str, tokens: Mapping[str, SecretStr]) -> str | None:
    """The name of the token ``value`` is (each compared in constant time), or None."""
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(value.encode(), token.get_secret_value().encode()):
            found = name
    return found
