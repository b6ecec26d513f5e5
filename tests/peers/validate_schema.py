#!/usr/bin/env python3
"""Validates a JSON document against a JSON Schema with the `jsonschema` package
(an implementation independent of relance).

  validate_schema.py SCHEMA.json < document.json

Exit 0 when the document is valid; exit 1 with every error otherwise.
"""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1], encoding="utf-8"))
document = json.load(sys.stdin)
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
for e in errors:
    print("%s: %s" % ("/".join(str(p) for p in e.path) or "(root)", e.message), file=sys.stderr)
sys.exit(1 if errors else 0)
