"""The catalogue of published models (catalog.yaml), light enough for the Snakefile to read."""

from importlib.resources import files

import yaml


def catalog():
    """{path under resources/models: {url, checksum or check}} for every published file."""
    return yaml.safe_load(files("virnucpro").joinpath("catalog.yaml").read_text())
