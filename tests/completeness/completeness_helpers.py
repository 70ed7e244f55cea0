"""What an application's own records look like, built from the emulator's ledgers.

The token source is what `POST /auth/token` answered when each token was issued; the
sessions source is what the application sent to `POST /connect/sessions`. Neither holds
what the pipeline is meant to find out: whether a token is revoked, whether a session was
completed, which connection it became.
"""

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# What an application stores with each token, at the least: the token, its connection and
# when it was issued.
TOKEN_MINIMUM = ("access_token", "connection_id", "issued_at")
# What `POST /auth/token` also answered, which an application usually keeps.
AUTH_TOKEN_DETAILS = ("customer_id", "customer_name", "provider_id", "company_id")
# What the application sent to create each session, and the ids Finch answered.
SESSION_FIELDS = (
    "session_id",
    "connect_url",
    "kind",
    "customer_id",
    "customer_name",
    "customer_email",
    "products",
    "redirect_uri",
    "provider_id",
    "created_at",
    "expires_at",
)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def token_records(tokens: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[dict]:
    return [{name: token[name] for name in fields} for token in tokens]


def session_records(sessions: Sequence[dict[str, Any]]) -> list[dict]:
    """Sessions as the application created them: no status, no connection; a
    reauthentication session knows the connection it is for."""
    records = []
    for session in sessions:
        record = {name: session.get(name) for name in SESSION_FIELDS}
        if session["kind"] == "reauthenticate":
            record["reauth_connection_id"] = session["connection_id"]
        records.append(record)
    return records
