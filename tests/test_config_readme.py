"""config/README.md describes every key of the config and every column of the two sheets, and
the schemas give each its type, allowed values and default: these tests keep the two in step,
so that the README names every key the schemas have, and no other, with the schemas'
defaults and required columns."""

import pytest
import yaml

from conftest import REPO

SCHEMAS = REPO / "workflow" / "schemas"


def readme_tables():
    """{section title: {first cell without backticks: [the row's other cells]}}."""
    tables = {}
    for section in (REPO / "config" / "README.md").read_text().split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        rows = [line.strip("| ").split(" | ") for line in body.splitlines() if line[:3] == "| `"]
        tables[title] = {cells[0].strip("`"): cells[1:] for cells in rows}
    return tables


def as_written(value):
    """A schema default as config/README.md writes it: YAML flow style, in backticks."""

    def flow(value):
        if value is None or isinstance(value, bool):
            return {None: "null", True: "true", False: "false"}[value]
        if isinstance(value, list):
            return f"[{', '.join(map(flow, value))}]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value.items()) + "}"
        return str(value)

    return f"`{flow(value)}`"


def config_rows(schema):
    """{key: schema} of the config's rows: a top-level key, or a key of a top-level group
    (`embedding.fp8_gate`, whose own keys its row names)."""
    rows = {}
    for name, sub in schema["properties"].items():
        if "properties" in sub:
            rows |= {f"{name}.{key}": inner for key, inner in sub["properties"].items()}
        else:
            rows[name] = sub
    return rows


def test_every_config_key_has_its_row():
    schema = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
    rows, table = config_rows(schema), readme_tables()["config.yaml"]
    assert sorted(table) == sorted(rows)
    for key, sub in rows.items():
        default, meaning = table[key]
        for inner in sub.get("properties", {}):
            assert f"`{inner}`" in meaning, (key, inner)
        if "properties" in sub:
            expected = {name: inner["default"] for name, inner in sub["properties"].items()}
            assert default == as_written(expected), key
        elif "default" in sub:
            assert default == as_written(sub["default"]), key


@pytest.mark.parametrize(
    "schema, title", [("samples", "Sample sheet"), ("training", "Training sheet")]
)
def test_every_sheet_column_has_its_row(schema, title):
    schema = yaml.safe_load((SCHEMAS / f"{schema}.schema.yaml").read_text())
    table = readme_tables()[title]
    assert list(table) == list(schema["properties"])
    for column, sub in schema["properties"].items():
        required = table[column][0].replace("`", "")
        if column in schema["required"]:
            assert required == "yes", column
        elif "default" in sub:
            assert required == f"no ({as_written(sub['default'])})".replace("`", ""), column
        else:
            assert required == "no", column
