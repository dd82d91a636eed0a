#!/usr/bin/python3
"""Python's census of a whole database, for rekey's gate tests.

  gate_judge.py census CONNINFO
      Reads every value of every text-like, json, array and bytea column of
      every table and materialized view outside pg_catalog, information_schema
      and rekey's state schema, finds its token spans, and tries each under
      NEW_ENCRYPTION_KEY, OLD_ENCRYPTION_KEY and OTHER_ENCRYPTION_KEY (plain,
      then wrapped). Prints {"new", "old", "other", "bad", "by_column":
      {"schema.table.column": {new, old, other, bad}}}, counting spans.

Keys come from the environment, never the command line.
"""
import base64
import json
import os
import re
import sys

import psycopg2
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

SPAN = re.compile(rb"(?<![A-Za-z0-9_-])(?:gAAAAA|Z0FBQUFB)[A-Za-z0-9_-]*=*")
TYPES = ("text", "varchar", "bpchar", "json", "jsonb", "bytea", "_text", "_varchar", "_json", "_jsonb")


def fernet(env):
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"faithful_finances_salt_v1", iterations=100000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(os.environ[env].encode())))


def label(keys, span):
    candidates = [span]
    try:
        candidates.append(base64.urlsafe_b64decode(span))
    except Exception:
        pass
    for raw in candidates:
        for name, f in keys:
            try:
                f.decrypt(raw)
                return name
            except (InvalidToken, ValueError, TypeError):
                pass
    return "bad"


def census(conninfo):
    keys = [("new", fernet("NEW_ENCRYPTION_KEY")), ("old", fernet("OLD_ENCRYPTION_KEY")),
            ("other", fernet("OTHER_ENCRYPTION_KEY"))]
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    cur.execute("""SELECT n.nspname, c.relname, a.attname, t.typname FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                   JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   JOIN pg_type t ON t.oid = a.atttypid
                   WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'rekey')
                     AND n.nspname NOT LIKE 'pg\\_%%' AND t.typname = ANY (%s)""", (list(TYPES),))
    total = {"new": 0, "old": 0, "other": 0, "bad": 0}
    by_column = {}
    q = lambda s: '"' + s.replace('"', '""') + '"'
    for schema, table, column, typ in cur.fetchall():
        expr = q(column) if typ == "bytea" else q(column) + "::text"
        cur.execute("SELECT %s FROM ONLY %s.%s" % (expr, q(schema), q(table)))
        counts = {"new": 0, "old": 0, "other": 0, "bad": 0}
        for (v,) in cur.fetchall():
            if v is None:
                continue
            raw = bytes(v) if isinstance(v, memoryview) else v.encode()
            for span in SPAN.findall(raw):
                counts[label(keys, span)] += 1
        for k in total:
            total[k] += counts[k]
        by_column["%s.%s.%s" % (schema, table, column)] = counts
    total["by_column"] = by_column
    return total


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "census":
        sys.exit(__doc__)
    print(json.dumps(census(sys.argv[2])))
