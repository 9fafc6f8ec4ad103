"""The catalogue of published models (catalog.yaml), light enough for the Snakefile to read."""

from importlib.resources import files

import yaml


def catalog():
    """{path under resources/models: {url, config_key, checksum or check}} for every published
    file, each url at its source's pinned revision."""
    raw = yaml.safe_load(files(__package__).joinpath("catalog.yaml").read_text())
    return {
        path: {**entry, "url": entry["url"].format(**raw["revisions"])}
        for path, entry in raw["files"].items()
    }
