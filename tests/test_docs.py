"""The documentation: docs/cli.md says what the app says, the README stays short and keeps the
test command CI runs, every page is in the site's nav, and no page cites what a reader cannot open.

The site itself is built by CI (`mkdocs build --strict`, .ci/run), which fails on broken links
and anchors; these checks need no docs dependencies.
"""

import difflib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", DOCS / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    expected = _generator().render_reference()
    actual = (DOCS / "cli.md").read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(actual.splitlines(), expected.splitlines(), "docs/cli.md", "the app", lineterm="")
        pytest.fail("docs/cli.md is out of date: run `python docs/gen_cli_reference.py`\n" + "\n".join(list(diff)[:20]))


def test_cli_reference_has_every_command_and_option():
    import typer.main

    from mocohd_cli.cli import app

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="mocohd")
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert f"\n## mocohd {name}\n" in text, name
        section = text.split(f"\n## mocohd {name}\n")[1].split("\n## ")[0]
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                for opt in [*param.opts, *param.secondary_opts]:
                    assert f"`{opt}`" in section, f"mocohd {name} {opt}"


def test_readme_is_short_and_keeps_the_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    # .ci/run runs the fenced block right after the marker
    block = re.search(r"<!-- test-command -->\n```\n(.+)\n```", readme)
    assert block and "python -m pytest" in block.group(1)
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for command in re.findall(r"```\n(python3 -m venv .+)\n```", readme):
        assert command in index, "docs/index.md repeats the README's set-up commands"


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert pages
    for page in pages:
        assert re.search(rf":\s+{re.escape(page)}\s*$", nav, re.M), f"{page} is not in mkdocs.yml's nav"


def test_pictures_are_the_examples():
    # the site shows examples/*.png through links, so a remade picture is never stale
    for link in (DOCS / "assets").iterdir():
        assert link.is_symlink() and link.resolve().parent == ROOT / "examples" and link.resolve().is_file(), link


UNOPENABLE = re.compile(r"\bSPEC\b|\bissues? #?\d+\b|\bthe issue\b|issue's", re.I)


def test_no_reference_a_reader_cannot_open():
    # other projects' public issues, named with their repository, may stay
    allowed = re.compile(r"GitHub issues #\d+(, #\d+)* in universome/stylegan-v|its issues #23, #37, #46")
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "benchmarks" / "RESULTS.md", *DOCS.rglob("*.md")]
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if UNOPENABLE.search(allowed.sub("", line)):
                pytest.fail(f"{path.relative_to(ROOT)}:{number} cites what a reader cannot open: {line.strip()}")
