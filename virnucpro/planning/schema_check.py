"""Checking the config or a sample sheet row against the workflow's JSON schemas: every problem
named by its key, with what is allowed there and what the key means (the schema's description),
where jsonschema alone says only what failed."""

import jsonschema
import yaml
from jsonschema.exceptions import best_match


def load_schema(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def problems(data, schema):
    """One line per problem of `data`: 'key: what is wrong (what the key is)'. Keys are dotted
    paths, e.g. embedding.shards; none when `data` is valid."""
    lines = {}
    for error in jsonschema.Draft202012Validator(schema).iter_errors(data):
        for key, text in _described(error, schema):
            lines[f"{key}: {text}"] = None
    return list(lines)


def _described(error, schema):
    """(dotted key, text) for each key one jsonschema error is about."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        for name in error.validator_value:
            if name not in error.instance:
                yield _key(path + [name]), f"missing ({_meaning(schema, path + [name])})"
    elif error.validator == "additionalProperties":
        known = ", ".join(error.schema["properties"])
        for name in error.instance:
            if name not in error.schema["properties"]:
                yield _key(path + [name]), f"is not a known key; the keys here are: {known}"
    else:
        # of the alternatives of a oneOf, the error of the one the value was closest to
        error = best_match([error])
        path = [str(part) for part in error.absolute_path]
        yield _key(path), f"{error.message} ({_meaning(schema, path)})"


def _key(path):
    return ".".join(path) or "(top level)"


def _meaning(schema, path):
    """The description of the nearest key on `path` that has one."""
    found = schema.get("description", "")
    for part in path:
        schema = schema.get("properties", {}).get(part) or schema.get("items") or {}
        found = schema.get("description", found)
    return found
