"""ImageNet class names and numbers (mocohd_cli/classes.py), as `--class` reads them."""

import pytest

from mocohd_cli.classes import class_names, parse_class, parse_classes
from mocohd_cli.errors import MocohdError


def test_class_names_and_numbers():
    names = class_names()
    assert len(names) == 1000 and names[207] == "golden retriever" and names[0] == "tench"
    assert parse_classes(["Golden-Retriever,1", "tench"], 1000) == [207, 1, 0]
    with pytest.raises(MocohdError, match="ambiguous: 205 flat-coated retriever"):
        parse_class("retriever", 1000)
    with pytest.raises(MocohdError, match="give a number"):
        parse_class("tench", 10)
    assert parse_class("9", 10) == 9
