"""Generated sections of docs/benchmarks.md: each benchmark owns the text between its two
markers (`<!-- NAME: generated, start -->` .. `end -->`) and rewrites only that, so every
benchmark stays runnable alone and the hand-written text around the sections survives."""

from __future__ import annotations

from pathlib import Path

from loadtest.bench.settings import REPO_ROOT

DOCS_MD = REPO_ROOT / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: generated, start -->", f"<!-- {name}: generated, end -->"


def replace_section(name: str, body: str, path: Path = DOCS_MD) -> None:
    """Puts `body` between the markers of `name`; appends the section when it is absent."""
    start, end = markers(name)
    section = f"{start}\n{body.rstrip()}\n{end}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
