"""The exception types the CLI turns into one line on stderr.

``MocohdError``: a failure the user can act on (exit code 1).
``UsageError``: an option or argument that cannot be right (exit code 2, as
for the parser's own usage errors): an out-of-range number, a format that
contradicts the file name, settings that contradict each other.
"""


class MocohdError(Exception):
    """A failure the user can act on: the message says what was wrong and what to do."""


class UsageError(MocohdError, ValueError):
    """A value the caller passed that can never work (the CLI exits with 2).

    Also a ``ValueError``, so library users can catch it as one."""


def a(word: str) -> str:
    """'a pca model', 'an image model'."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"
