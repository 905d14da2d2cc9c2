"""User-facing errors: every message says what went wrong and what to do about it."""


class LTError(Exception):
    """An error caused by input a person can fix (a file, an argument, a missing dataset).

    The CLI prints the message without a traceback; the app shows it in ``st.error``.
    """


class DatasetUnavailable(LTError):
    """A dataset is not on disk and could not be downloaded."""


class InvalidFile(LTError):
    """A trajectory or parameter file failed validation."""
