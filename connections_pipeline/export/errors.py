"""The two ways an export fails: a setting it cannot use, or a write that did not finish."""

URL_SETTING = "CONNECTIONS_EXPORT_URL"
OPTIONS_SETTING = "CONNECTIONS_EXPORT_STORAGE_OPTIONS"


class ExportSettingError(ValueError):
    """A setting of the export is unusable; the message names it. Raised before any write,
    and the same on every retry."""


class ExportWriteError(RuntimeError):
    """Writing a file failed; the file that was there before is still there, whole."""
