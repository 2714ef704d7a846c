"""Small Sphinx helpers for the particleseg documentation (no extra packages).

``.. cli-help:: COMMAND``
    The ``--help`` text of ``particleseg COMMAND``, read from the installed
    command at build time, so the page never goes out of date.

Changelog
    ``changelog.rst`` contains the line ``.. include-changelog``; it is
    replaced by ``CHANGELOG.md`` from the repository root, converted from the
    few Markdown constructs Keep a Changelog uses to reStructuredText. If the
    conversion does not parse cleanly, the Markdown is shown verbatim; if the
    file does not exist, a short note says where the changelog will live.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

CHANGELOG_MARKER = ".. include-changelog"


class CliHelp(SphinxDirective):
    """Insert the help text of a ``particleseg`` sub-command."""

    required_arguments = 0
    optional_arguments = 1

    def run(self):
        from particleseg.cli import main

        argv = [*self.arguments, "--help"]
        out = io.StringIO()
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"
        try:
            with contextlib.redirect_stdout(out):
                try:
                    main(argv)
                except SystemExit:
                    pass
        finally:
            if previous is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = previous
        text = out.getvalue().rstrip()
        if not text:
            raise self.error(f"`particleseg {' '.join(argv)}` printed nothing.")
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


# --------------------------------------------------------------------------
# CHANGELOG.md -> reStructuredText

_UNDERLINES = {2: "-", 3: "~", 4: "^"}


def _inline(text: str) -> str:
    """Markdown inline code and links to reStructuredText; code is left as is."""
    parts = re.split(r"(`[^`\n]+`)", text)  # odd items: `code` spans
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"`{part}`")  # `code` -> ``code``
            continue
        # [text](url) -> `text <url>`__
        part = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"`\1 <\2>`__", part)
        # [0.1.0] (a reference-style link label) -> 0.1.0
        part = re.sub(r"\[([^\]]+)\]", r"\1", part)
        out.append(part)
    return "".join(out)


def markdown_to_rst(markdown: str) -> str:
    """Convert a Keep-a-Changelog style Markdown file to reStructuredText."""
    lines = []
    for line in markdown.splitlines():
        if re.match(r"^\[[^\]]+\]:\s*\S+", line):  # link definitions
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            level = len(heading.group(1))
            if level == 1:  # the page already has its title
                continue
            title = _inline(heading.group(2))
            lines += ["", title, _UNDERLINES.get(level, "^") * len(title), ""]
            continue
        bullet = re.match(r"^(\s*)[*+-]\s+(.*)$", line)
        if bullet:
            lines.append(f"{bullet.group(1)}- {_inline(bullet.group(2))}")
            continue
        lines.append(_inline(line))
    return "\n".join(lines).strip() + "\n"


def _parses_cleanly(rst: str) -> bool:
    from docutils.core import publish_doctree

    stream = io.StringIO()
    publish_doctree(
        rst,
        settings_overrides={"report_level": 2, "halt_level": 5, "warning_stream": stream},
    )
    return not stream.getvalue()


def _changelog_rst(path: Path) -> str:
    if not path.exists():
        return (
            "The changelog is kept in ``CHANGELOG.md`` at the root of the repository "
            "(Keep a Changelog style: Added / Changed / Fixed); it is shown here once "
            "it exists.\n"
        )
    markdown = path.read_text(encoding="utf-8")
    rst = markdown_to_rst(markdown)
    if _parses_cleanly(rst):
        return rst
    indented = "\n".join("   " + line if line else "" for line in markdown.splitlines())
    return f".. code-block:: markdown\n\n{indented}\n"


def _insert_changelog(app, docname, source):
    if docname != "changelog" or CHANGELOG_MARKER not in source[0]:
        return
    path = Path(app.confdir).parent / "CHANGELOG.md"
    if path.exists():
        app.env.note_dependency(str(path))
    source[0] = source[0].replace(CHANGELOG_MARKER, _changelog_rst(path))


def setup(app):
    app.add_directive("cli-help", CliHelp)
    app.connect("source-read", _insert_changelog)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
