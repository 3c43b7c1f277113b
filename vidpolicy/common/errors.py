"""The one error type that means "the user's input is bad": the CLI prints it on one line and exits 2."""


class VidpolicyError(Exception):
    """Bad input (a file, a flag, a config). The message names the file or flag and the problem."""
