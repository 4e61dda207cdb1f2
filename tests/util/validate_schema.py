#!/usr/bin/env python3
"""Validates YAML files against Keel's JSON Schemas with Python's `jsonschema`: a validator
independent of the Rust code that generated them (tests/schema.rs runs it).

    validate_schema.py [--schema SCHEMA.json] FILE...

Without --schema, each file names its own schema on its first line, as editors read it:
`# yaml-language-server: $schema=<path relative to the file>`; a file without that line
is an error. YAML is read as serde_yaml reads it (YAML 1.2's core schema: `2026-11-22`,
`20:00`, `on` and `yes` are text, not dates, numbers or booleans), not as PyYAML's YAML 1.1.

Prints `ok FILE` or `invalid FILE at PATH: MESSAGE` per problem; exits 0 when every file
is valid, 1 when one is not, 2 on bad usage or an unreadable file, 3 when a module is
missing (scripts/test installs the pinned versions).
"""

import json
import os
import re
import sys

try:
    import yaml
    import jsonschema
    from jsonschema.exceptions import best_match
except ImportError as e:  # Fail loudly: a missing validator must not pass for valid files.
    print(f"error: python module missing ({e}): run the tests with scripts/test, which pip-installs "
          "the pinned PyYAML and jsonschema", file=sys.stderr)
    sys.exit(3)

HEADER = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)\s*$")


class Core12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core schema resolution, as serde_yaml has."""


Core12Loader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+0123456789.")),
]:
    Core12Loader.add_implicit_resolver("tag:yaml.org,2002:" + tag, re.compile(pattern), first)


def construct_int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def construct_float(loader, node):
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


Core12Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
Core12Loader.add_constructor("tag:yaml.org,2002:float", construct_float)


def schema_of(path, text, given):
    if given:
        return given
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    m = HEADER.match(first)
    if not m:
        raise ValueError("its first line is not `# yaml-language-server: $schema=<schema>`")
    return os.path.normpath(os.path.join(os.path.dirname(path), m.group(1)))


def main(argv):
    given = None
    if len(argv) >= 2 and argv[0] == "--schema":
        given, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = {}
    failed = False
    for path in argv:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            schema_path = schema_of(path, text, given)
            if schema_path not in schemas:
                with open(schema_path, encoding="utf-8") as f:
                    schema = json.load(f)
                jsonschema.Draft7Validator.check_schema(schema)
                schemas[schema_path] = jsonschema.Draft7Validator(
                    schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
            document = yaml.load(text, Loader=Core12Loader)
        except (OSError, ValueError, yaml.YAMLError, jsonschema.SchemaError) as e:
            print(f"error: {path}: {e}", file=sys.stderr)
            return 2
        errors = sorted(schemas[schema_path].iter_errors(document), key=lambda e: list(e.absolute_path))
        if not errors:
            print(f"ok {path}")
        for error in errors:
            failed = True
            # Under an anyOf (an optional key is `X or null`), the deepest error says why.
            error = best_match([error])
            where = "/" + "/".join(str(p) for p in error.absolute_path)
            print(f"invalid {path} at {where}: {error.message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
