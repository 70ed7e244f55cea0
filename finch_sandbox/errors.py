"""Finch's error responses: `{"code", "name", "finch_code", "message"}` with Finch's names.

Names and finch codes follow Finch's "Error Types" reference, so a client written against
the emulator branches on the same values it will meet in production.
"""

from __future__ import annotations

from typing import Any


class FinchError(Exception):
    """An error answer of the Finch surface; raised by handlers, rendered by the app."""

    def __init__(self, status: int, name: str, message: str, finch_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.name = name
        self.finch_code = finch_code
        self.message = message

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.status,
            "name": self.name,
            "finch_code": self.finch_code,
            "message": self.message,
        }
        if self.status == 429:
            body["statusCode"] = self.status
            body["status"] = self.status
        return body


def missing_authorization() -> FinchError:
    return FinchError(
        401, "unauthorized_request_error", "The access token is missing from the request header."
    )


def invalid_token() -> FinchError:
    """Unknown and revoked tokens get the same answer (Finch documents no separate one)."""
    return FinchError(401, "invalid_token_error", "The access_token is incorrect.")


def invalid_client() -> FinchError:
    return FinchError(
        401, "invalid_client_error", "The provided application credentials were incorrect."
    )


def reauthenticate_user() -> FinchError:
    return FinchError(
        401,
        "authentication_error",
        "The employer must reconnect their employment system.",
        "reauthenticate_user",
    )


def account_setup_required() -> FinchError:
    return FinchError(
        401,
        "authentication_error",
        "The employer must finish connecting their employment system.",
        "account_setup_required",
    )


def insufficient_account_permissions() -> FinchError:
    return FinchError(
        403,
        "error_permissions",
        "The admin account used for this connection lacks the required permissions.",
        "insufficient_account_permissions",
    )


def insufficient_scope(product: str) -> FinchError:
    return FinchError(
        403,
        "insufficient_scope_error",
        f"The access token is not authorized for the {product} product.",
    )


def bad_request(message: str) -> FinchError:
    return FinchError(400, "bad_request", message, "invalid_request")


def invalid_grant() -> FinchError:
    return FinchError(400, "invalid_grant_error", "The authorization code is invalid.")


def not_found(message: str = "The requested resource could not be found.") -> FinchError:
    return FinchError(404, "not_found_error", message, "item_not_found")


def rate_limited(finch_code: str) -> FinchError:
    scope = "IP address" if finch_code == "finch_api_ip_rl" else "application"
    return FinchError(
        429, "rate_limit_exceeded_error", f"Rate limit exceeded for this {scope}.", finch_code
    )


def server_error(status: int) -> FinchError:
    return FinchError(status, "server_error", "An unexpected error occurred. Please retry later.")
