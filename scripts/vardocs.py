#!/usr/bin/env python3
"""Render the README's variable reference from the argument specs.

scripts/vardocs.py          rewrite the tables in README.md
scripts/vardocs.py --check  exit 1 when README.md is out of date
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
START, END = "<!-- vars:start -->", "<!-- vars:end -->"


def spec_files():
    """(title, path) of every argument spec: site.yml's first, then each role's, by name."""
    specs = [("site.yml", ROOT / "playbooks/vars/argument_specs.yml")]
    specs += [(f"{path.parents[1].name} role", path) for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml"))]
    return specs


def main_options(path):
    """The options of the `main` entry point; other entry points are not settings."""
    entry = yaml.safe_load(path.read_text())["argument_specs"].get("main") or {}
    return entry.get("options") or {}


def _cell(value):
    text = " ".join(str(value).split())
    text = re.sub(r"[CV]\(([^)]*)\)", r"`\1`", text)
    return text.replace("|", "\\|")


def _type(option):
    kind = option.get("type", "str")
    if kind == "list":
        kind = f"list of {option.get('elements', 'str')}"
    if "choices" in option:
        kind += ": " + ", ".join(f"`{choice}`" for choice in option["choices"])
    return kind


def render():
    parts = []
    for title, path in spec_files():
        options = main_options(path)
        parts += [f"### {title}", "", "| Variable | Type | Default | Meaning |", "| --- | --- | --- | --- |"]
        # Suboptions (an option's own `options:`) stay out: one row per variable.
        for name, option in options.items():
            default = option.get("default", "")
            default = f"`{default}`" if default not in ("", None) else ("required" if option.get("required") else "")
            description = option.get("description", "")
            if isinstance(description, list):
                description = " ".join(description)
            parts.append(f"| `{name}` | {_cell(_type(option))} | {_cell(default)} | {_cell(description)} |")
        parts.append("")
    return "\n".join(parts)


def main(argv):
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{render()}{END}{tail}"
    if "--check" in argv:
        if updated != text:
            print("README.md's variable tables are out of date: run scripts/vardocs.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
