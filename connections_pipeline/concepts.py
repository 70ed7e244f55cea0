"""The vocabulary of Finch and of its Dashboard, each term declared once.

States, statuses and their labels, connection types, authentication methods, Connect
products and session statuses: the Pandera checks, the partitions, the Connect-link
validation and the labels the CSV shows all take them from here. The emulator
(`finch_sandbox`) keeps its own copy of Finch's side, as Finch would; tests check the two
agree, and the official SDK's types agree with both.
"""

# The Connections page's three tabs, and so the states of a row and the CSV partitions.
LIVE, STAGED, DISCONNECTED = "live", "staged", "disconnected"
STATES: tuple[str, ...] = (LIVE, STAGED, DISCONNECTED)

# Finch's `connection_status.status` codes.
PENDING_STATUS, PROCESSING, CONNECTED = "pending", "processing", "connected"
REAUTH = "reauth"
ERROR_NO_ACCOUNT_SETUP, ERROR_PERMISSIONS = "error_no_account_setup", "error_permissions"
CONNECTION_STATUSES: tuple[str, ...] = (
    PENDING_STATUS,
    PROCESSING,
    CONNECTED,
    ERROR_NO_ACCOUNT_SETUP,
    ERROR_PERMISSIONS,
    REAUTH,
)
# The status the pipeline gives a connection Finch no longer answers for.
DISCONNECTED_STATUS = "disconnected"
# Why a known connection's row is no longer refreshed when the token source lists none of
# its tokens (the application dropped them, e.g. the customer offboarded): `last_error`.
NO_SOURCE_TOKEN = "no token in the source"
# Statuses in which the employer must act; such connections are still Live.
NEEDS_ACTION_STATUSES: tuple[str, ...] = (REAUTH, ERROR_NO_ACCOUNT_SETUP, ERROR_PERMISSIONS)
# Each status as the Dashboard's "Connection Status" column shows it.
CONNECTION_STATUS_LABELS: dict[str, str] = {
    CONNECTED: "Connected",
    REAUTH: "Re-auth",
    PENDING_STATUS: "Pending",
    PROCESSING: "Processing",
    ERROR_NO_ACCOUNT_SETUP: "Error: no account setup",
    ERROR_PERMISSIONS: "Error: permissions",
    DISCONNECTED_STATUS: "Disconnected",
}

# Authentication method types, and the connection types the Dashboard derives from them.
AUTH_METHODS: tuple[str, ...] = ("assisted", "credential", "api_token", "api_credential", "oauth")
ASSISTED_AUTH = "assisted"
AUTOMATED_AUTH_TYPES: tuple[str, ...] = tuple(m for m in AUTH_METHODS if m != ASSISTED_AUTH)
AUTOMATED, ASSISTED, AUTOMATED_ASSISTED = "Automated", "Assisted", "Automated, Assisted"
CONNECTION_TYPES: tuple[str, ...] = (AUTOMATED, ASSISTED, AUTOMATED_ASSISTED)

# The products a Connect session may ask for, as `POST /connect/sessions` (and the official
# SDK) accept them. `deduction` is Finch's older alias of `benefits`.
CONNECT_PRODUCTS: tuple[str, ...] = (
    "company",
    "directory",
    "individual",
    "employment",
    "payment",
    "pay_statement",
    "benefits",
    "ssn",
    "deduction",
    "documents",
    "plans",
    "plans_dependents",
    "plans_enrollments",
    "recordkeeping",
)
# `sandbox` of a Connect session (Finch sandbox applications only).
SANDBOX_MODES: tuple[str, ...] = ("finch", "provider")
# `/introspect`'s `client_type`: the kind of application a token belongs to.
CLIENT_TYPES: tuple[str, ...] = ("development", "production", "sandbox")

# The session ledger: a session's kind and the progress the pipeline derives for it.
KIND_CONNECT, KIND_REAUTHENTICATE = "connect", "reauthenticate"
PENDING, COMPLETED, EXPIRED, UNKNOWN = "pending", "completed", "expired", "unknown"
SESSION_STATUSES: tuple[str, ...] = (PENDING, COMPLETED, EXPIRED, UNKNOWN)
