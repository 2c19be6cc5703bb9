"""The docs site builds with ``mkdocs build --strict`` (broken links and anchors fail it), and the
README stays one screen whose links all lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

README = REPO / "README.md"
ONE_SCREEN = 50  # lines
# [text](target): a Markdown inline link or image; the target up to a space, ')' or '#'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>#]*)(#[^)\s>]*)?>?(?:\s+\"[^\"]*\")?\s*\)")


def test_docs_site_builds_strict(tmp_path: Path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"), "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index", "analytics-engineers", "business-users", "benchmarks/index", "benchmarks/transform"):
        assert (tmp_path / f"{page}.html").is_file(), page


def test_readme_fits_one_screen():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= ONE_SCREEN, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_readme_states_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert "make run" in text and "make test" in text


def test_readme_links_resolve():
    targets = [m.group(1) for m in LINK.finditer(README.read_text(encoding="utf-8"))]
    relative = [t for t in targets if t and not re.match(r"^[a-z][a-z0-9+.-]*:", t)]
    assert relative, "README.md links to no docs page"
    missing = [t for t in relative if not (README.parent / t).resolve().exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    assert any(t.startswith("docs/") for t in relative)


def test_every_setting_command_and_target_is_in_the_reference():
    """The reference pages follow the code: a new ELT_ setting, elt command or make target is documented."""
    settings = (REPO / "docs/reference/settings.md").read_text(encoding="utf-8")
    cli = (REPO / "docs/reference/cli.md").read_text(encoding="utf-8")
    variables = set(re.findall(r'"(ELT_[A-Z_]+)"', (REPO / "src/elt_platform/settings.py").read_text(encoding="utf-8")))
    commands = re.findall(r'add_parser\(\s*"([a-z-]+)"', (REPO / "src/elt_platform/cli/commands.py").read_text())
    targets = re.findall(r"^([a-z][a-z-]*):[^\n]*## ", (REPO / "Makefile").read_text(encoding="utf-8"), re.M)
    assert variables and commands and targets
    missing = (
        [f"{v} (docs/reference/settings.md)" for v in sorted(variables) if f"`{v}`" not in settings]
        + [f"elt {c} (docs/reference/cli.md)" for c in commands if f"`elt {c}`" not in cli]
        + [f"make {t} (docs/reference/cli.md)" for t in targets if f"`make {t}`" not in cli]
    )
    assert not missing, f"Undocumented: {missing}"
