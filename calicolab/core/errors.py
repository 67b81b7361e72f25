"""Errors that end a task with one actionable line instead of a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite: the message says what is wrong and what to do."""


class StageFailed(Exception):
    """A lifecycle stage failed; the message names the stage and the first cause."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job): unwinds like Ctrl-C, so every try/finally cleanup runs."""
