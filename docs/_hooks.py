"""MkDocs hooks of the sensitiv site (declared under `hooks:` in mkdocs.yml).

`config-reference.md` is generated at build time from `schemas/config.schema.json`, the
schema `sensitiv analyze` validates against, so the reference cannot drift from the
validator. The example gallery's figures are served from `examples/*/output/`. Nothing is
written into `docs/`; the page and the figures exist only in the built site.

The renderer is a plain function of the schema (`render_config_reference`), tested on its
own in `tests/test_docs_build.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.json"
PAGE = "config-reference.md"
EXAMPLES_PATH = Path(__file__).resolve().parent.parent / "examples"

_TOP_SECTIONS = (
    "structure", "model", "solver", "condition", "observables", "jacobian", "ensemble", "output"
)


# -- rendering ------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, no column separators)."""
    return " ".join(str(text).split()).replace("|", "&#124;")


def _code(value: Any) -> str:
    """A JSON value as inline code, the way it is written in YAML."""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False)
    if "|" in text:
        # A pipe would split the table cell even inside backticks; spell it as HTML.
        # Raw HTML is not protected from Markdown: spell every special character as an entity.
        escaped = "".join(f"&#{ord(c)};" if c in "|*_[]\\`<>&" else c for c in text)
        return "<code>" + escaped + "</code>"
    return f"`{text}`"


class _Renderer:
    def __init__(self, schema: Mapping[str, Any]):
        self.schema = schema
        self.defs = schema.get("$defs", {})
        self.sections: list[str] = []
        # Anchor of each object definition that gets a section of its own.
        self.anchors: dict[str, str] = {}

    # -- types ---------------------------------------------------------------------

    def resolve(self, node: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
        """Follow a local `$ref`; returns the target and the definition's name."""
        ref = node.get("$ref")
        if ref is None:
            return node, None
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"{SCHEMA_PATH.name}: only local $defs references are rendered, got {ref!r}")
        name = ref[len("#/$defs/"):]
        target = dict(self.defs[name])
        # Sibling keywords next to $ref (a description, a default) refine the target.
        target.update({k: v for k, v in node.items() if k != "$ref"})
        return target, name

    def type_of(self, node: Mapping[str, Any], path: str) -> str:
        node, def_name = self.resolve(node)
        if def_name == "name":
            return "name (letters, digits, `_ . -`)"
        if "const" in node:
            return _code(node["const"])
        if "enum" in node:
            return " or ".join(_code(v) for v in node["enum"])
        for key in ("oneOf", "anyOf"):
            if key in node and "type" not in node:
                return " or ".join(self.type_of(option, path) for option in node[key])
        kind = node.get("type")
        if isinstance(kind, list):
            return " or ".join(kind)
        if kind == "array":
            items = node.get("items")
            text = "list"
            if items is not None:
                text += " of " + self.type_of(items, path + "[]")
            lo, hi = node.get("minItems"), node.get("maxItems")
            if lo is not None and lo == hi:
                text += f", exactly {lo}"
            elif lo is not None and hi is not None:
                text += f", {lo} to {hi}"
            elif lo:
                text += f", at least {lo}"
            if node.get("uniqueItems"):
                text += ", no repeats"
            return text
        if kind in ("number", "integer"):
            bounds = []
            if "minimum" in node:
                bounds.append(f"≥ {node['minimum']}")
            if "exclusiveMinimum" in node:
                bounds.append(f"> {node['exclusiveMinimum']}")
            if "maximum" in node:
                bounds.append(f"≤ {node['maximum']}")
            if "exclusiveMaximum" in node:
                bounds.append(f"< {node['exclusiveMaximum']}")
            return kind + (" " + ", ".join(bounds) if bounds else "")
        if kind == "string":
            if "pattern" in node:
                return "string matching " + _code(node["pattern"])
            if node.get("minLength"):
                return "non-empty string"
            return "string"
        if kind == "object":
            if path in self.anchors:
                return f"mapping, see [`{path}`](#{self.anchors[path]})"
            extra = node.get("additionalProperties")
            if isinstance(extra, Mapping):
                return "mapping name → " + self.type_of(extra, path + ".*")
            return "mapping"
        if kind is not None:
            return kind
        if node is True or node == {}:
            return "any"
        return "see description"

    # -- sections ------------------------------------------------------------------

    @staticmethod
    def anchor(path: str) -> str:
        return "config-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-").lower()

    def has_section(self, node: Mapping[str, Any]) -> bool:
        node, _ = self.resolve(node)
        return bool(node.get("properties")) or bool(node.get("allOf"))

    def collect_anchors(self, properties: Mapping[str, Any], prefix: str) -> None:
        for key, sub in properties.items():
            path = f"{prefix}.{key}" if prefix else key
            target, _ = self.resolve(sub)
            if self.has_section(target):
                self.anchors[path] = self.anchor(path)
                self.collect_anchors(target.get("properties", {}), path)

    def table(self, properties: Mapping[str, Any], required: set[str], prefix: str) -> list[str]:
        rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for key, sub in properties.items():
            if sub is True:  # `name: true` re-admits a key documented elsewhere
                continue
            path = f"{prefix}.{key}" if prefix else key
            target, _ = self.resolve(sub)
            if "default" in target:
                default = _code(target["default"])
            elif key in required:
                default = "**required**"
            else:
                default = "—"
            description = target.get("description", "")
            if path in self.anchors and not description:
                description = f"see [`{path}`](#{self.anchors[path]})"
            rows.append(
                f"| `{key}` | {_cell(self.type_of(sub, path))} | {_cell(default)} | {_cell(description)} |"
            )
        return rows

    def exclusive_note(self, node: Mapping[str, Any]) -> list[str]:
        """Render a `oneOf` of `required` alternatives as 'exactly one of'."""
        options = node.get("oneOf", [])
        keys = []
        for option in options:
            if not isinstance(option, Mapping) or set(option) - {"required", "not"}:
                return []
            keys.append(" + ".join(f"`{k}`" for k in option.get("required", [])))
        if not keys:
            return []
        return ["", "Give exactly one of " + ", ".join(keys) + "."]

    def section(self, node: Mapping[str, Any], path: str, level: int) -> None:
        node, _ = self.resolve(node)
        lines = [f"{'#' * level} `{path}` {{#{self.anchor(path)}}}", ""]
        if node.get("description"):
            lines += [node["description"], ""]
        properties = node.get("properties", {})
        required = set(node.get("required", []))
        if properties:
            lines += self.table(properties, required, path)
        lines += self.exclusive_note(node)
        # Conditional variants (`if name is X then these keys`): one table per variant.
        for branch in node.get("allOf", []):
            condition = branch.get("if", {}).get("properties", {})
            then = branch.get("then")
            if not condition or not then:
                continue
            (cond_key, cond), = condition.items()
            values = [cond["const"]] if "const" in cond else cond.get("enum", [])
            lines += [
                "",
                f"With `{cond_key}: ` " + " or ".join(_code(v) for v in values) + ":",
                "",
            ]
            lines += self.table(then.get("properties", {}), set(then.get("required", [])), path)
        lines.append("")
        self.sections.append("\n".join(lines))
        for key, sub in properties.items():
            sub_path = f"{path}.{key}"
            if sub_path in self.anchors and sub is not True:
                self.section(sub, sub_path, min(level + 1, 6))

    def render(self) -> str:
        schema = self.schema
        properties = schema.get("properties", {})
        self.collect_anchors(properties, "")
        required = set(schema.get("required", []))
        head = [
            "# Configuration reference",
            "",
            "<!-- Generated from schemas/config.schema.json by docs/_hooks.py; edit the schema, not this page. -->",
            "",
            f"*Generated at build time from `schemas/config.schema.json` ({schema.get('title', '')}).*",
            "",
            schema.get("description", ""),
            "",
            "A configuration is a YAML mapping with these top-level keys. Keys not listed here are "
            "errors (`sensitiv analyze` names the file, line and column, and suggests the closest key). "
            "Plugins add the `options` of their models, solvers, conditions and readers; "
            "[the configuration guide](config.md) explains the whole file with examples.",
            "",
        ]
        head += self.table(properties, required, "")
        head.append("")
        for key, sub in properties.items():
            if key in self.anchors:
                self.section(sub, key, 2)
            else:
                target, _ = self.resolve(sub)
                # Lists of items with their own forms (observables) get a short section too.
                if key in _TOP_SECTIONS:
                    lines = [f"## `{key}` {{#{self.anchor(key)}}}", ""]
                    if target.get("description"):
                        lines += [target["description"], ""]
                    lines += [f"Type: {self.type_of(sub, key)}."]
                    items = target.get("items")
                    if items is not None:
                        item, _ = self.resolve(items)
                        for option in item.get("oneOf", []):
                            option, _ = self.resolve(option)
                            if option.get("properties"):
                                lines += ["", "Each entry as a mapping:", ""]
                                lines += self.table(option["properties"], set(option.get("required", [])), key + "[]")
                    lines.append("")
                    self.sections.append("\n".join(lines))
        return "\n".join(head) + "\n" + "\n".join(self.sections)


def render_config_reference(schema: Mapping[str, Any]) -> str:
    """The Markdown of the configuration reference page for a config JSON schema."""
    return _Renderer(schema).render()


# -- MkDocs events ------------------------------------------------------------------------


def on_files(files, config):
    from mkdocs.structure.files import File

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    files.append(File.generated(config, PAGE, content=render_config_reference(schema)))
    # The gallery shows the figures the examples wrote (examples/<name>/output/*.png) as
    # gallery/<name>/<figure>.png: served from where the scripts put them, never copied
    # into docs/, so a re-run example updates its picture on the site.
    for figure in sorted(EXAMPLES_PATH.glob("*/output/*.png")):
        src_uri = f"gallery/{figure.parent.parent.name}/{figure.name}"
        files.append(File.generated(config, src_uri, abs_src_path=str(figure)))
    return files
