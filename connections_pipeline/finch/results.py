"""Typed outcomes of Finch calls: what each call came to, never an exception."""

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# How the `reason` of an UNKNOWN result starts; what follows says what happened.
MAY_HAVE_TAKEN_EFFECT = "may have taken effect: "


class CallOutcome(StrEnum):
    """What a Finch call came to, in the terms the pipeline acts on."""

    OK = "ok"
    NEEDS_REAUTH = "needs_reauth"
    INVALID_TOKEN = "invalid_token"
    PERMISSION_MISSING = "permission_missing"
    FAILED = "failed"
    # Only for calls that are not idempotent (creating a Connect session): the request may
    # have reached Finch and taken effect, but no usable answer came back (a timeout, a
    # dropped connection, a 5xx, an unreadable success body). Never retried: a retry could
    # do the same thing twice.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class FinchCallResult:
    """The result of one logical call, after pacing and retries.

    `text` holds the body as Finch sent it when `outcome` is OK (checked to be UTF-8 JSON
    within the decoding limits, with the endpoint's required fields); `data` decodes it on
    each access, for the few callers that want Python objects. For every other outcome the
    Finch error fields (or, for transport failures and unusable bodies, a `reason`) say
    why; a refused body is quoted by at most a short excerpt. For UNKNOWN the `reason`
    starts with MAY_HAVE_TAKEN_EFFECT. No field ever holds an access token or client secret.
    """

    endpoint: str
    outcome: CallOutcome
    status_code: int | None = None
    text: str | None = None
    error_name: str | None = None
    finch_code: str | None = None
    message: str | None = None
    reason: str | None = None
    request_id: str | None = None
    attempts: int = 1
    server_date: str | None = None

    @property
    def data(self) -> Any:
        return None if self.text is None else json.loads(self.text)

    @property
    def ok(self) -> bool:
        return self.outcome is CallOutcome.OK

    @property
    def unknown(self) -> bool:
        """Whether the call may have taken effect at Finch although it did not answer ok."""
        return self.outcome is CallOutcome.UNKNOWN
