"""Regenerates the settings table in docs/OPERATIONS.md from ``service.settings.Settings``.

Every field is a ``VIDREC_<FIELD>`` variable; the table gives its type and bounds (from the
field's annotation and constraints), its default, and what it does (from the ``Attributes:``
section of the class docstring), so the doc cannot drift from the code.

python scripts/render_settings_docs.py          # rewrite the table in place
python scripts/render_settings_docs.py --check  # exit 1 if the doc is stale (the tests do this)
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

from doc_sections import update_doc
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from service.settings import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "OPERATIONS.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
PREFIX = Settings.model_config.get("env_prefix", "VIDREC_")
MiB = 1024 * 1024


def descriptions() -> dict[str, str]:
    """``field -> text`` from the ``Attributes:`` section of the class docstring."""
    doc = inspect.cleandoc(Settings.__doc__ or "")
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    out: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current and line.startswith("        "):
            out[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return out


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """``{"gt": 0, "le": 1}`` from annotated-types constraints."""
    found = {}
    for item in metadata:
        for attr in ("gt", "ge", "lt", "le"):
            value = getattr(item, attr, None)
            if value is not None:
                found[attr] = value
    return found


def _bounded(name: str, bounds: dict[str, Any]) -> str:
    low = ("(", bounds["gt"]) if "gt" in bounds else ("[", bounds["ge"]) if "ge" in bounds else None
    high = (
        (")", bounds["lt"]) if "lt" in bounds else ("]", bounds["le"]) if "le" in bounds else None
    )
    if low and high:
        return f"{name} in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"{name} {'>' if low[0] == '(' else '>='} {low[1]}"
    if high:
        return f"{name} {'<' if high[0] == ')' else '<='} {high[1]}"
    return name


def type_text(annotation: Any, metadata: list[Any]) -> str:
    """``int > 0``, ``float in (0, 1]``, ``str or unset``, ``list of str``, ``path or unset``..."""
    bounds = _constraints(metadata)
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and any(
        a is type(None) for a in args
    )
    if optional:
        (annotation,) = [a for a in args if a is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        for item in extra:
            bounds |= _constraints(item.metadata if isinstance(item, FieldInfo) else [item])
    if typing.get_origin(annotation) is list:
        name = f"list of {typing.get_args(annotation)[0].__name__}"
    elif annotation is Path:
        name = "path"
    elif typing.get_origin(annotation) is dict:
        name = "budget"
    elif typing.get_origin(annotation) is typing.Literal:
        name = " or ".join(map(str, typing.get_args(annotation)))
    else:
        name = getattr(annotation, "__name__", str(annotation))
    text = _bounded(name, bounds)
    return f"{text} or unset" if optional else text


def default_text(name: str, field: FieldInfo) -> str:
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, list):
        return "empty" if not value else ",".join(map(str, value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if name.endswith("_bytes") and isinstance(value, int) and value % MiB == 0:
        return f"{value} ({value // MiB} MiB)"
    return str(value)


def render_table() -> str:
    texts = descriptions()
    lines = [
        "| variable | type | default | what it does |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        variable = f"`{PREFIX}{name.upper()}`"
        kind = type_text(field.annotation, list(field.metadata))
        # reST literals (double backquotes) as Markdown code.
        what = texts.get(name, "").replace("``", "`").replace("|", "\\|")
        lines.append(f"| {variable} | {kind} | `{default_text(name, field)}` | {what} |")
    note = (
        "Generated by `scripts/render_settings_docs.py` from `service.settings.Settings` "
        "(types, bounds, defaults and the class docstring). Lists take `a,b` or a JSON list."
    )
    return "\n".join([START, note, "", *lines, END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/OPERATIONS.md is stale")
    args = parser.parse_args()
    missing = [name for name in Settings.model_fields if name not in descriptions()]
    if missing:
        print(f"Settings fields without a docstring entry: {', '.join(missing)}", file=sys.stderr)
        return 1
    sections = [(START, END, render_table)]
    return update_doc(DOC, sections, check=args.check, script="scripts/render_settings_docs.py")


if __name__ == "__main__":
    sys.exit(main())
