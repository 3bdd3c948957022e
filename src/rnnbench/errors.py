"""The one error type for results files and directories (framework-free)."""


class ResultsError(Exception):
    """A results file or directory is missing, incomplete, unreadable or inconsistent.
    The message is one line that names the file (and the field, where one is at fault)."""
