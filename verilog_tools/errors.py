"""Errors meant for users: one line naming the problem and the fix; the CLI prints `error: ...`, exits 2."""


class UserError(Exception):
    """A problem the user can fix (missing tool, bad flag, unreadable file); the message says how."""
