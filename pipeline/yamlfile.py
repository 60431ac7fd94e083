"""The one way the project parses YAML: safe loading (plain data, no Python objects), with
libyaml's C parser when the machine has it. Every process loading the Dagster definitions
parses a dozen YAML documents; the pure-Python parser took about a second of it."""

from __future__ import annotations

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # same documents, same errors (yaml.YAMLError)


def load_yaml(text: str):
    """The data of a YAML document (as `yaml.safe_load`)."""
    return yaml.load(text, Loader=_LOADER)
