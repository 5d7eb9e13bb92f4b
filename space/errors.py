"""The one exception type every layer raises for bad user input.

The CLI prints any :class:`UserInputError` as a single ``error: ...`` line and exits 2 (docs/cli-output.md).
It lives in ``space`` because that is the bottom of the dependency chain (nas -> runners -> space).
"""


class UserInputError(Exception):
    """Bad input from the user (a flag, a file, a name, a folder): say what was wrong and what is allowed."""
