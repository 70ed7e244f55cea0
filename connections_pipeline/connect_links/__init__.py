"""Finch Connect links: validation, request bodies and ledger rows (pure), and the
service functions that create links and reauthentication links."""

from connections_pipeline.connect_links.request import (
    AUTH_METHODS,
    CONNECT_PRODUCTS,
    SANDBOX_MODES,
    ConnectLinkError,
    ConnectLinkOutcomeUnknown,
    ConnectLinkRequest,
    check_request,
    customer_key,
    parse_products,
    request_body,
    validation_problems,
)
from connections_pipeline.connect_links.service import (
    CreatedLink,
    ReauthOutcome,
    create_connect_link,
    create_reauth_links,
)

__all__ = [
    "AUTH_METHODS",
    "CONNECT_PRODUCTS",
    "SANDBOX_MODES",
    "ConnectLinkError",
    "ConnectLinkOutcomeUnknown",
    "ConnectLinkRequest",
    "CreatedLink",
    "ReauthOutcome",
    "check_request",
    "create_connect_link",
    "create_reauth_links",
    "customer_key",
    "parse_products",
    "request_body",
    "validation_problems",
]
