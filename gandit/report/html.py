"""Jinja rendering of gandit's HTML pages (the audit report, the calibration page).

Templates live in ``templates/`` at the top of the repository and ship inside the wheel as
the data package ``gandit._templates``. Autoescape is on for every template: entry names
come from archives and are hostile input. Pages are self-contained: CSS inline, images as
``data:`` URIs, and a Content-Security-Policy that lets the browser fetch nothing; the one
optional inline script (sorting and filtering) is allowed by its SHA-256 alone, and every
page works with JavaScript off.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

TEMPLATE_PACKAGE = "gandit._templates"


def templates_dir() -> Path:
    """The templates folder: the installed data package, else the source tree."""
    try:
        spec = importlib.util.find_spec(TEMPLATE_PACKAGE)
    except ModuleNotFoundError:
        spec = None
    # a data folder without __init__.py is a namespace package: its folder is the search location
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / "base.html.j2").is_file():
            return Path(location)
    return Path(__file__).resolve().parent.parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,                    # every template, whatever its extension
        undefined=jinja2.StrictUndefined,   # a missing value is a bug, not an empty string
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["num"] = format_number
    return env


def format_number(value: Any, digits: int = 3) -> str:
    """``n/a`` for missing numbers, else fixed decimals (integers as they are)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def script_source(name: str) -> str:
    return (templates_dir() / name).read_text("utf-8")


def content_security_policy(scripts: list[str]) -> str:
    """Nothing may load from anywhere: images only from ``data:``, styles inline, scripts only
    those whose exact text is given (by hash)."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode('utf-8')).digest()).decode()}'"
                      for s in scripts)
    return ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
            f"script-src {hashes or chr(39) + 'none' + chr(39)}; "
            "base-uri 'none'; form-action 'none'")


def render(template: str, *, scripts: tuple[str, ...] = (), **context: Any) -> str:
    """Render ``template`` with ``context``; ``scripts`` names files in the templates folder
    that are inlined (and allowed by hash in the page's CSP)."""
    sources = [script_source(name) for name in scripts]
    from gandit import __version__

    return environment().get_template(template).render(
        csp=content_security_policy(sources), scripts=[Markup(s) for s in sources], gandit_version=__version__,
        **context)
