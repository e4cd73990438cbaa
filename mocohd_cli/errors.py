"""The one exception type the CLI turns into a one-line message and exit code 1."""


class MocohdError(Exception):
    """A failure the user can act on: the message says what was wrong and what to do."""


def a(word: str) -> str:
    """'a pca model', 'an image model'."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"
