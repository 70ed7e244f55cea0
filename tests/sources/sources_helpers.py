"""Shared bits of the token-source tests: secret-looking tokens and a leak check."""

import secrets

from connections_pipeline.finch import token_fingerprint


def make_token(label: str) -> str:
    """A token that looks like a real one and cannot appear anywhere by accident."""
    return f"tok-{label}-{secrets.token_hex(12)}"


def fingerprint(token: str) -> str:
    return token_fingerprint(token)


def assert_no_token_in(text: str, *tokens: str) -> None:
    for token in tokens:
        assert token not in text, "an access token leaked"
        # A token's distinctive random part must not leak either (e.g. after trimming).
        assert token.rsplit("-", 1)[-1] not in text, "part of an access token leaked"
