"""Errors a user can act on.

Raise `InputError` for anything the user got wrong (a bad option, a malformed file, a setting out of
range). Its message is one line that says what is wrong and how to fix it; the CLI prints it without a
traceback and exits 2. Every package of the project raises it, so it lives in this dependency-free module.
"""


class InputError(ValueError):
    """Bad usage or input: one line for the user, exit code 2."""

    exit_code = 2


class DeviceError(RuntimeError):
    """A radio or accelerator that cannot be reached or misbehaves: one line, exit code 3."""

    exit_code = 3
