"""The sample sheet: one row per sample, checked against its schema, every problem of every row
reported at once by line, sample and column."""

import csv
import re
from pathlib import Path

from ..errors import InputError
from .schema_check import load_schema, problems

_SHOWN = 20  # problems listed in one error message
_WHOLE_NUMBER = re.compile(r"[+-]?\d+")


def read_sample_sheet(
    path, schema_path, key="sample", files=("fasta",), config_key="samples", sheet="sample sheet"
):
    """The sheet as {name: row} (the name in its `key` column), each row filled with the
    schema's defaults. Also reads the training sheet (key `set`, files fasta and genbank; the
    `training.sheet` of the config).

    Raises InputError listing each problem as 'line N (sample S), column C: what is wrong',
    and how to fix the sheet. The paths of the `files` columns must name existing files: a
    mistyped one stops the run before anything runs, not when its sample's turn comes."""
    schema = load_schema(schema_path)
    columns = schema["properties"]
    defaults = {name: spec["default"] for name, spec in columns.items() if "default" in spec}
    found, rows_by_name, first_line = [], {}, {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel writes a BOM
            rows = csv.DictReader(handle, delimiter="\t")
            found += _header_problems(rows.fieldnames, schema, sheet)
            for row in rows if not found else ():
                line, name = rows.line_num, row.get(key)
                where = f"line {line}" + (f" ({key} {name!r})" if name else "")
                if None in row:
                    found.append(f"{where}: {len(row[None])} more field(s) than the header has")
                row = {k: v for k, v in row.items() if k is not None and v not in ("", None)}
                if _WHOLE_NUMBER.fullmatch(row.get("chunk_size", "")):
                    row["chunk_size"] = int(row["chunk_size"])  # its schema says what is allowed
                row_problems = problems(row, schema)
                row_problems += [p for column in files for p in _file_problems(row, column)]
                found += [f"{where}, column {problem}" for problem in row_problems]
                if name in first_line:
                    found.append(
                        f"{where}, column {key}: {name!r} is listed on line {first_line[name]} "
                        f"too; give each {key} its own name"
                    )
                elif name:
                    first_line[name] = line
                if not row_problems:
                    rows_by_name[name] = {**defaults, **row}
    except UnicodeDecodeError as error:
        found.append(f"is not UTF-8 text ({error.reason}); save it as UTF-8 text")
    except OSError as error:
        found.append(
            f"cannot be read ({error.strerror}); set `{config_key}:` in the config to its path"
        )
    if found:
        more = f"\n  and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
        shown = "\n  ".join(found[:_SHOWN])
        raise InputError(
            f"{sheet} {path}:\n  {shown}{more}\nCorrect the sheet: tab-separated, a header "
            f"line, one row per {key}; its columns are {', '.join(columns)} (config/README.md)."
        )
    return rows_by_name


def _header_problems(header, schema, sheet):
    """Unknown and missing columns: reported alone, as every row would repeat them."""
    if not header:
        return ["line 1: no header line; the first line names the columns"]
    unknown = [name for name in header if name not in schema["properties"]]
    missing = [name for name in schema["required"] if name not in header]
    found = [f"line 1 (the header), column {name!r}: not a {sheet} column" for name in unknown]
    found += [f"line 1 (the header): no column {name!r}" for name in missing]
    if unknown and len(header) == 1 and "," in header[0]:
        found.append("line 1 (the header): columns are separated by commas; use tabs")
    return found


def _file_problems(row, column):
    path = row.get(column)
    if path is None or Path(path).is_file():
        return []
    missing = "is not a file" if Path(path).exists() else "does not exist"
    return [
        f"{column}: {path} {missing} (a relative path is taken from the directory the workflow "
        f"runs in, {Path.cwd()})"
    ]
