"""Refer to an access token without revealing it."""

import hashlib

FINGERPRINT_LENGTH = 16


def token_fingerprint(access_token: str) -> str:
    """Return a short, stable SHA-256 fingerprint of a token.

    Everything the pipeline stores or logs refers to a token by this value; 16 hex characters
    (64 bits) keep collisions out of reach for any realistic number of tokens.
    """
    return hashlib.sha256(access_token.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]
