"""JSON Schema → Gemini `Schema` (the OpenAPI 3.0 subset `generationConfig.responseSchema` and function
`parameters` take).

Gemini rejects every keyword outside its subset ("Unknown name … Cannot find field"), so each one is either
rewritten where the meaning survives or refused with a 400 that names it:

- `$ref` into `$defs`/`definitions` is inlined (a recursive one is refused); `$schema`, `$id`, `$comment` and
  other pure annotations are dropped; `examples` becomes `example`.
- `oneOf` becomes `anyOf` (a generator that satisfies one branch satisfies the union), an `allOf` of one
  schema is merged, `{"type": [T, "null"]}` and `anyOf [T, {"type": "null"}]` become `T` with `nullable`.
- `const` becomes a one-value `enum` (strings) or `minimum = maximum` (numbers); integer `exclusiveMinimum`/
  `exclusiveMaximum` become `minimum + 1`/`maximum - 1`.
- `additionalProperties` `false`/`true`/`{}` is dropped (Gemini only ever generates the declared properties);
  a schema there (a map type) cannot be expressed, nor can an object without properties, a value with no type,
  non-string enums, `uniqueItems`, `not`, `if`, `patternProperties`, … : those are refused.
"""

from __future__ import annotations

import math
from typing import Any

from ..protocol import UnsupportedParameter

# Keywords Gemini's Schema has, copied as they are.
_KEEP = frozenset(
    {
        "description", "title", "nullable", "format", "pattern", "example", "default", "minItems", "maxItems",
        "minLength", "maxLength", "minProperties", "maxProperties", "minimum", "maximum", "required",
        "propertyOrdering",
    }
)  # fmt: skip
# Annotations with no effect on which values are valid: dropped.
_DROP = frozenset(
    {
        "$schema", "$id", "$comment", "$anchor", "readOnly", "writeOnly", "deprecated", "contentMediaType",
        "contentEncoding", "discriminator", "externalDocs", "xml",
    }
)  # fmt: skip
# Handled by the converter itself.
_HANDLED = frozenset(
    {
        "type", "properties", "items", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
        "definitions", "additionalProperties", "examples", "exclusiveMinimum", "exclusiveMaximum",
    }
)  # fmt: skip
_TYPES = {"string", "number", "integer", "boolean", "array", "object"}


class SchemaConverter:
    """Converts one JSON schema; `where` names it in errors (`response_format.schema`, `tools[0].parameters`)."""

    def __init__(self, provider: str, where: str, root: dict[str, Any], *, order_properties: bool = False) -> None:
        self.provider = provider
        self.where = where
        self.defs: dict[str, Any] = {**(root.get("definitions") or {}), **(root.get("$defs") or {})}
        self.order_properties = order_properties

    def refuse(self, path: str, keyword: str, reason: str) -> UnsupportedParameter:
        return UnsupportedParameter(f"{self.where}{path}.{keyword}".replace("..", "."), self.provider, reason)

    def convert(self, schema: Any, path: str = "", refs: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(schema, dict):
            raise self.refuse(path, "type", "a schema must be a JSON object (boolean schemas cannot be expressed)")
        if "$ref" in schema:
            return self._ref(schema, path, refs)
        for key in schema:
            if key not in _KEEP and key not in _DROP and key not in _HANDLED:
                raise self.refuse(path, key, f"Gemini's schema has no '{key}' keyword")
        out: dict[str, Any] = {k: v for k, v in schema.items() if k in _KEEP}
        if (
            "examples" in schema
            and "example" not in out
            and isinstance(schema["examples"], list)
            and schema["examples"]
        ):
            out["example"] = schema["examples"][0]
        self._type(schema, out, path)
        if "allOf" in schema:
            self._all_of(schema["allOf"], out, path, refs)
        if "anyOf" in schema and "oneOf" in schema:
            raise self.refuse(path, "oneOf", "a schema with both anyOf and oneOf cannot be expressed")
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                self._union(keyword, schema[keyword], out, path, refs)
        if "const" in schema:
            self._const(schema["const"], out, path)
        if "enum" in schema:
            self._enum(schema["enum"], out, path)
        self._exclusive(schema, out, path)
        if "properties" in schema:
            props = schema["properties"]
            if not isinstance(props, dict):
                raise self.refuse(path, "properties", "properties must be an object")
            out["properties"] = {
                name: self.convert(sub, f"{path}.properties.{name}", refs) for name, sub in props.items()
            }
            if self.order_properties and len(props) > 1 and "propertyOrdering" not in out:
                out["propertyOrdering"] = list(props)
        self._additional(schema, path)
        if "items" in schema:
            if not isinstance(schema["items"], dict):
                raise self.refuse(path, "items", "tuple-form items (a list of schemas) cannot be expressed")
            out["items"] = self.convert(schema["items"], f"{path}.items", refs)
        self._infer_type(out, path)
        return out

    def _ref(self, schema: dict[str, Any], path: str, refs: tuple[str, ...]) -> dict[str, Any]:
        ref = schema["$ref"]
        name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""
        if not isinstance(ref, str) or not ref.startswith(("#/$defs/", "#/definitions/")) or name not in self.defs:
            raise self.refuse(path, "$ref", f"only local references into $defs can be inlined, not {ref!r}")
        if name in refs:
            raise self.refuse(path, "$ref", f"the recursive reference to {name!r} cannot be inlined")
        resolved = self.convert(self.defs[name], path, (*refs, name))
        for key, value in schema.items():  # keywords beside a $ref (a description, say) refine what it points to
            if key in _KEEP:
                resolved[key] = value
            elif key != "$ref" and key not in _DROP:
                raise self.refuse(path, key, "only annotations can stand beside a $ref")
        return resolved

    def _type(self, schema: dict[str, Any], out: dict[str, Any], path: str) -> None:
        kind = schema.get("type")
        if kind is None:
            return
        kinds = kind if isinstance(kind, list) else [kind]
        if not all(isinstance(k, str) and k.lower() in _TYPES | {"null"} for k in kinds):
            raise self.refuse(path, "type", f"unknown type {kind!r}")
        real = [k.lower() for k in kinds if k.lower() != "null"]
        if len(real) < len(kinds):
            out["nullable"] = True
        if not real:
            raise self.refuse(path, "type", "a schema that only allows null cannot be expressed")
        if len(real) == 1:
            out["type"] = real[0].upper()
        else:  # ["string", "integer"]: one branch per type, each with the type-specific keywords
            rest = {k: v for k, v in schema.items() if k not in ("type", "description", "title", "nullable")}
            out["anyOf"] = [self.convert({**rest, "type": k}, path) for k in real]
            for key in list(out):
                if key not in ("anyOf", "description", "title", "nullable"):
                    del out[key]

    def _all_of(self, subs: Any, out: dict[str, Any], path: str, refs: tuple[str, ...]) -> None:
        if not isinstance(subs, list) or len(subs) != 1:
            raise self.refuse(path, "allOf", "only an allOf of a single schema can be merged")
        for key, value in self.convert(subs[0], f"{path}.allOf[0]", refs).items():
            out.setdefault(key, value)

    def _union(self, keyword: str, subs: Any, out: dict[str, Any], path: str, refs: tuple[str, ...]) -> None:
        if not isinstance(subs, list) or not subs:
            raise self.refuse(path, keyword, f"{keyword} must be a non-empty list of schemas")
        branches = [s for s in subs if not (isinstance(s, dict) and s.get("type") == "null" and len(s) == 1)]
        if len(branches) < len(subs):
            out["nullable"] = True
        converted = [self.convert(s, f"{path}.{keyword}[{i}]", refs) for i, s in enumerate(branches)]
        if len(converted) == 1:
            for key, value in converted[0].items():
                out.setdefault(key, value)
        elif converted:
            out["anyOf"] = converted

    def _const(self, value: Any, out: dict[str, Any], path: str) -> None:
        if isinstance(value, str):
            out["enum"] = [value]
            out.setdefault("type", "STRING")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out["minimum"] = out["maximum"] = value
            out.setdefault("type", "INTEGER" if isinstance(value, int) else "NUMBER")
        else:
            raise self.refuse(path, "const", "only string and number constants can be expressed")

    def _enum(self, values: Any, out: dict[str, Any], path: str) -> None:
        if not isinstance(values, list):
            raise self.refuse(path, "enum", "enum must be a list")
        if None in values:
            out["nullable"] = True
        values = [v for v in values if v is not None]
        if not all(isinstance(v, str) for v in values) or out.get("type", "STRING") != "STRING":
            raise self.refuse(path, "enum", "Gemini takes enums of strings only")
        out["enum"] = values
        out["type"] = "STRING"

    def _exclusive(self, schema: dict[str, Any], out: dict[str, Any], path: str) -> None:
        for keyword, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = schema.get(keyword)
            if value is None or value is False:
                continue
            if value is True:  # draft 4: a flag on minimum/maximum
                value = schema.get(bound)
            if out.get("type") != "INTEGER" or isinstance(value, bool) or not isinstance(value, int | float):
                raise self.refuse(path, keyword, "an exclusive bound can be expressed only on an integer")
            out[bound] = math.floor(value) + 1 if bound == "minimum" else math.ceil(value) - 1

    def _additional(self, schema: dict[str, Any], path: str) -> None:
        extra = schema.get("additionalProperties")
        if extra is None or isinstance(extra, bool) or extra == {}:
            return  # Gemini generates only the declared properties, which satisfies either answer
        raise self.refuse(
            path, "additionalProperties", "a map type (additionalProperties with a schema) cannot be expressed"
        )

    def _infer_type(self, out: dict[str, Any], path: str) -> None:
        if "type" in out or "anyOf" in out:
            pass
        elif "properties" in out:
            out["type"] = "OBJECT"
        elif "items" in out:
            out["type"] = "ARRAY"
        else:
            raise self.refuse(path, "type", "a schema without a type (any JSON value) cannot be expressed")
        if out.get("type") == "OBJECT" and not out.get("properties"):
            raise self.refuse(path, "properties", "an object without declared properties cannot be expressed")


def to_gemini_schema(
    schema: dict[str, Any], provider: str, where: str, *, order_properties: bool = False
) -> dict[str, Any]:
    """The Gemini form of a JSON schema, or an UnsupportedParameter naming the keyword it cannot express."""
    return SchemaConverter(provider, where, schema, order_properties=order_properties).convert(schema)


def is_free_object(schema: dict[str, Any] | None) -> bool:
    """An object schema that declares no properties (a tool with no parameters, "any JSON object")."""
    if schema is None:
        return True
    extra = schema.get("additionalProperties")
    return (
        schema.get("type", "object") == "object"
        and not schema.get("properties")
        and (extra is None or isinstance(extra, bool) or extra == {})
        and not any(k in schema for k in ("anyOf", "oneOf", "allOf", "$ref", "enum", "const", "items"))
    )
