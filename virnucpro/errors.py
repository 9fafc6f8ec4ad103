"""The error for input the workflow cannot use."""


class InputError(ValueError):
    """Input the workflow cannot use; the message names the file, the record (or row and
    column, or key) and the fix."""
