#!/usr/bin/python3
"""Tokens for rekey's table-shape tests (tests/shapes_it_test.cpp), written and
judged by Python's cryptography, for tables the test creates itself
(inheritance, partitions, INCLUDE keys, float and timestamp keys, generated
columns, row-level security).

Rows are told apart by the relation holding them (tableoid) and their
physical position, never by the text of their key, so that a key whose text
does not round-trip (a float, a timestamp, the same id in a parent and its
child) cannot hide a row from the check.

  shapes.py fill  CONNINFO SPEC.json MANIFEST.json
      Sets every named column of every row of each table, its inheritance
      children and partitions included, to a fresh plain token (a plaintext
      naming the relation, column and row, a random timestamp); writes every
      cell written to MANIFEST.json.
  shapes.py check CONNINFO MANIFEST.json OPTIONS.json
      Reads every row back; prints {"ok", "error_count", "errors", "rows",
      "rows_by_relation"}.

Keys never travel on the command line: SPEC and OPTIONS name environment
variables holding passphrases.

SPEC:
{
  "seed": 1,
  "key": "OLD_ENCRYPTION_KEY",                       # the key every token is written under
  "tables": [{"schema": "public", "table": "t",
              "columns": ["a_enc"],                  # filled
              "copies": {"g_enc": "a_enc"}}]         # columns PostgreSQL keeps equal to another (generated)
}
OPTIONS:
{
  "final": "NEW_ENCRYPTION_KEY",   # every cell must decrypt under it to its plaintext and timestamp
  "dead": ["OLD_ENCRYPTION_KEY"]   # and under none of these
}
"""
import json
import random
import sys
from collections import Counter

import psycopg2
from psycopg2 import sql
from cryptography.fernet import InvalidToken

from fixture import MAX_ERRORS, fernet_from_env


def relation_names(cur, oids) -> dict:
    """schema.table of each relation oid, whatever the session's search_path."""
    cur.execute("SELECT c.oid, n.nspname || '.' || c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY (%s::oid[])", (list(oids),))
    return dict(cur.fetchall())


def fill(conninfo: str, spec_path: str, manifest_path: str) -> None:
    spec = json.load(open(spec_path))
    rng = random.Random(spec.get("seed", 1))
    key_env = spec.get("key", "OLD_ENCRYPTION_KEY")
    fernet = fernet_from_env(key_env)
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    manifest = {"key": key_env, "tables": []}
    for t in spec["tables"]:
        qtable = sql.Identifier(t["schema"], t["table"])
        columns = t["columns"]
        cur.execute(sql.SQL("SELECT tableoid::int8, ctid::text FROM {} ORDER BY 1, 2").format(qtable))
        rows = cur.fetchall()
        names = relation_names(cur, {oid for oid, _ in rows})
        update = sql.SQL("UPDATE {} SET {} WHERE tableoid = %s::oid AND ctid = %s::tid").format(
            qtable, sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns))
        cells = []
        for n, (oid, ctid) in enumerate(rows):
            values = []
            for column in columns:
                plaintext = f"{names[oid]}|{column}|{n}|".encode() + rng.randbytes(rng.randint(0, 24)).hex().encode()
                ts = 1_500_000_000 + rng.randint(0, 200_000_000)
                values.append(fernet.encrypt_at_time(plaintext, ts).decode())
                cells.append([names[oid], column, plaintext.hex(), ts])
            cur.execute(update, values + [oid, ctid])
        manifest["tables"].append({"schema": t["schema"], "table": t["table"], "columns": columns,
                                   "copies": t.get("copies", {}), "rows": len(rows), "cells": cells})
    conn.commit()
    conn.close()
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


class Errors:
    """Collects error messages: how many, and the first MAX_ERRORS of them."""

    def __init__(self):
        self.count = 0
        self.messages = []

    def __call__(self, msg: str) -> None:
        self.count += 1
        if len(self.messages) < MAX_ERRORS:
            self.messages.append(msg)


def check(conninfo: str, manifest_path: str, options_path: str) -> dict:
    manifest = json.load(open(manifest_path))
    opts = json.load(open(options_path))
    final = fernet_from_env(opts.get("final", "NEW_ENCRYPTION_KEY"))
    dead = {env: fernet_from_env(env) for env in opts.get("dead", ["OLD_ENCRYPTION_KEY"])}
    err = Errors()
    conn = psycopg2.connect(conninfo)
    conn.set_session(readonly=True, autocommit=True)
    cur = conn.cursor()
    total_rows = 0
    by_relation = Counter()
    for t in manifest["tables"]:
        qtable = sql.Identifier(t["schema"], t["table"])
        # Each checked column with the filled column whose cells it must hold.
        checked = [(c, c) for c in t["columns"]] + list(t["copies"].items())
        cur.execute(sql.SQL("SELECT tableoid::int8, {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c, _ in checked), qtable))
        rows = cur.fetchall()
        names = relation_names(cur, {r[0] for r in rows})
        total_rows += len(rows)
        by_relation.update(names[r[0]] for r in rows)
        if len(rows) != t["rows"]:
            err(f"{t['schema']}.{t['table']}: {len(rows)} rows, {t['rows']} filled")
        expected = Counter()
        for relation, column, plaintext, ts in t["cells"]:
            expected[(relation, column, plaintext, ts)] += 1
            for copy, source in t["copies"].items():
                if source == column:
                    expected[(relation, copy, plaintext, ts)] += 1
        found = Counter()
        for r in rows:
            relation = names[r[0]]
            for (column, _), value in zip(checked, r[1:]):
                where = f"{relation} {column}"
                if value is None:
                    err(f"{where}: NULL")
                    continue
                token = value.encode()
                try:
                    found[(relation, column, final.decrypt(token).hex(), final.extract_timestamp(token))] += 1
                except InvalidToken:
                    under = [env for env, f in dead.items() if _decrypts(f, token)]
                    err(f"{where}: does not decrypt under the final key" + (f" (still under {under[0]})" if under else ""))
                    continue
                for env, f in dead.items():
                    if _decrypts(f, token):
                        err(f"{where}: still decrypts under {env}")
        for cell in sorted((expected - found).elements()):
            err(f"{cell[0]} {cell[1]}: the value of plaintext {bytes.fromhex(cell[2])[:40]!r} is missing")
        for cell in sorted((found - expected).elements()):
            err(f"{cell[0]} {cell[1]}: a value never written (plaintext {bytes.fromhex(cell[2])[:40]!r}, "
                f"timestamp {cell[3]})")
    conn.close()
    return {"ok": err.count == 0, "error_count": err.count, "errors": err.messages, "rows": total_rows,
            "rows_by_relation": dict(by_relation)}


def _decrypts(fernet, token: bytes) -> bool:
    try:
        fernet.decrypt(token)
        return True
    except InvalidToken:
        return False


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "fill" and len(sys.argv) == 5:
        fill(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "check" and len(sys.argv) == 5:
        json.dump(check(sys.argv[2], sys.argv[3], sys.argv[4]), sys.stdout)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
