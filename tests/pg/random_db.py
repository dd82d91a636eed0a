#!/usr/bin/python3
"""Randomized databases for rekey's invariant tests, judged by Python's
cryptography (the service's own library).

  random_db.py seed  CONNINFO SEED MANIFEST.json
      Creates tables of random shapes (integer, text, composite and INCLUDE
      primary keys, no primary key, hostile names) with random columns (text,
      varchar, bytea, jsonb, text[]) filled with random values: tokens under
      the old key, the new key and an unknown key, plain and wrapped; several
      tokens in one value; JSON around tokens; tokens inside text; broken
      tokens; plain text; NULLs. Reads every cell back (its text form, bytea
      as hex) into the manifest: the state before the rotation.
  random_db.py check CONNINFO MANIFEST.json ROTATE_EXIT VERIFY_EXIT
      Reads every cell again and checks the invariants; prints one JSON
      object {"ok", "errors", "stats"}:
        1. Nothing lost: a cell is byte-identical, or differs only inside its
           tokens, each of which decrypts under the new key (never the old) to
           the same plaintext and timestamp, in the same format.
        2. The gate tells the truth: if any cell still holds a token the old
           key opens, verify --require-new did not exit 0, and rotate did not
           exit 0.
        3. rotate exits 0 or 3 (nothing here stops it), and 3 exactly when
           something it cannot rotate still holds an old-key token or a value
           could not be decrypted.
        4. Liveness: a well-formed value of a rotatable column (text, varchar,
           bytea; in a table with a primary key; not a key column) whose tokens
           all open under a known key ends under the new key.

Keys come from OLD_ENCRYPTION_KEY, NEW_ENCRYPTION_KEY and OTHER_ENCRYPTION_KEY
(passphrases) in the environment; never on the command line.
"""
import base64
import json
import os
import random
import re
import sys

import psycopg2
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

SALT = b"faithful_finances_salt_v1"
SPAN = re.compile(rb"(?<![A-Za-z0-9_-])(?:gAAAAA|Z0FBQUFB)[A-Za-z0-9_-]*=*")
NAMES = ["accounts", "Phone Numbers", 'we"ird', "new\nline", "ünïcode", "select", "a.b", "x" * 40]
COLUMN_NAMES = ["v", "Enc Col", 'q"uote', "line\nbreak", "n\u00e4me", "from", "#hash", "eq=ual"]


def fernet(env):
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=100000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(os.environ[env].encode())))


def qi(name):
    return '"' + name.replace('"', '""') + '"'


class Keys:
    def __init__(self):
        self.old = fernet("OLD_ENCRYPTION_KEY")
        self.new = fernet("NEW_ENCRYPTION_KEY")
        self.other = fernet("OTHER_ENCRYPTION_KEY")

    def open(self, token_bytes):
        """(label, plaintext, timestamp, format) of a token span, or None."""
        for fmt, raw in (("plain", token_bytes), ("wrapped", None)):
            if fmt == "wrapped":
                try:
                    raw = base64.urlsafe_b64decode(token_bytes)
                except Exception:
                    return None
                if not raw.startswith(b"gAAAAA"):
                    return None
            for label, f in (("old", self.old), ("new", self.new), ("other", self.other)):
                try:
                    pt = f.decrypt(raw)
                except (InvalidToken, ValueError, TypeError):
                    continue
                return label, pt, f.extract_timestamp(raw), fmt
            if fmt == "plain" and token_bytes.startswith(b"gAAAAA"):
                return None
        return None


# ---------------------------------------------------------------- values

class Gen:
    def __init__(self, rng, keys):
        self.rng = rng
        self.keys = keys

    def token(self, wrapped_ok=True):
        """A token and whether its key is known to rekey."""
        r = self.rng.random()
        f, known = (self.keys.old, True) if r < 0.55 else (self.keys.new, True) if r < 0.85 else (self.keys.other, False)
        pt = ("acct-%d-" % self.rng.randrange(10**9)).encode() + os.urandom(self.rng.randrange(0, 40)).hex().encode()
        tok = f.encrypt_at_time(pt, self.rng.randrange(1_500_000_000, 1_800_000_000))
        if wrapped_ok and self.rng.random() < 0.3:
            tok = base64.urlsafe_b64encode(tok)
        return tok, known

    def text_value(self):
        """(bytes, clean): clean when every token in it opens under a known key and the value is well formed."""
        r = self.rng.random()
        if r < 0.40:
            t, k = self.token()
            return t, k
        if r < 0.50:  # several tokens joined
            parts = [self.token() for _ in range(self.rng.randint(2, 3))]
            sep = self.rng.choice([b",", b", ", b";", b" ", b"\n"])
            return sep.join(p[0] for p in parts), all(p[1] for p in parts)
        if r < 0.58:  # JSON string literal
            t, k = self.token()
            return b'"' + t + b'"', k
        if r < 0.64:  # JSON array / object around tokens
            a, ka = self.token()
            b, kb = self.token()
            return self.rng.choice([b'["' + a + b'", "' + b + b'"]', b'{"acct": "' + a + b'", "n": 7}']), ka and kb
        if r < 0.70:  # a token inside text, or with whitespace around it
            t, k = self.token()
            return self.rng.choice([b"acct: " + t + b" (primary)", b"  " + t + b"\n", b"\t" + t]), k
        if r < 0.76:  # a broken token: truncated
            t, _ = self.token(wrapped_ok=False)
            return t[: self.rng.randrange(10, len(t) - 1)], False
        if r < 0.84:  # plain text, never a token
            return self.rng.choice([b"", b"hello world", b"+1 555 0100", b"GB29NWBK60161331926819",
                                    base64.urlsafe_b64encode(os.urandom(30))]), True
        if r < 0.88:  # non-UTF-8 bytes around a token (bytea only; text columns get a plain value)
            t, k = self.token(wrapped_ok=False)
            return b"\xff\xfe" + t + b"\x80", k
        return None, True

    def json_value(self):
        r = self.rng.random()
        if r < 0.5:
            t, _ = self.token(wrapped_ok=False)
            return json.dumps({"acct": t.decode(), "n": self.rng.randrange(100)})
        if r < 0.8:
            return json.dumps({"theme": "dark", "n": self.rng.randrange(100)})
        return None

    def array_value(self):
        r = self.rng.random()
        if r < 0.5:
            return [self.token()[0].decode() for _ in range(self.rng.randint(1, 3))]
        if r < 0.8:
            return ["alpha", "bravo"]
        return None


def is_utf8(b):
    try:
        b.decode("utf-8")
        return b"\x00" not in b
    except UnicodeDecodeError:
        return False


# ---------------------------------------------------------------- seeding

SHAPES = ["pk_int", "pk_text", "pk_composite", "pk_include", "no_pk"]
TYPES = ["text", "varchar(2000)", "bytea", "jsonb", "text[]"]


def table_plan(rng, index):
    name = rng.choice(NAMES) + "_%d" % index
    shape = rng.choice(SHAPES)
    ncols = rng.randint(1, 3)
    cols = []
    used = set()
    for _ in range(ncols):
        c = rng.choice(COLUMN_NAMES)
        while c in used:
            c = c + "_"
        used.add(c)
        cols.append({"name": c, "type": rng.choice(TYPES)})
    return {"schema": rng.choice(["public", "Tenant Data"]), "table": name, "shape": shape, "columns": cols,
            "rows": rng.randint(15, 60)}


def create(cur, t):
    cols = ", ".join("%s %s" % (qi(c["name"]), c["type"]) for c in t["columns"])
    s = t["shape"]
    key = {"pk_int": "rid int PRIMARY KEY",
           "pk_text": "rid int NOT NULL, k text PRIMARY KEY",
           "pk_composite": "rid int NOT NULL, a int, b text, PRIMARY KEY (a, b)",
           "pk_include": "rid int NOT NULL, label text, PRIMARY KEY (rid) INCLUDE (label)",
           "no_pk": "rid int NOT NULL"}[s]
    cur.execute("CREATE TABLE %s.%s (%s, %s)" % (qi(t["schema"]), qi(t["table"]), key, cols))


def key_values(t, rid):
    s = t["shape"]
    if s == "pk_text":
        return {"k": "k'%d\\,{\"}" % rid}
    if s == "pk_composite":
        return {"a": rid % 5, "b": "b %d" % rid}
    if s == "pk_include":
        return {"label": None}
    return {}


def seed(conninfo, seed_value, manifest_path):
    rng = random.Random(seed_value)
    gen = Gen(rng, Keys())
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    cur.execute('CREATE SCHEMA IF NOT EXISTS "Tenant Data"')
    tables = [table_plan(rng, i) for i in range(rng.randint(2, 5))]
    clean = {}
    for t in tables:
        create(cur, t)
        for rid in range(t["rows"]):
            values = {"rid": rid}
            values.update(key_values(t, rid))
            for c in t["columns"]:
                if c["type"] == "jsonb":
                    values[c["name"]] = gen.json_value()
                elif c["type"] == "text[]":
                    values[c["name"]] = gen.array_value()
                else:
                    v, ok = gen.text_value()
                    if c["type"] != "bytea" and v is not None and not is_utf8(v):
                        v, ok = b"plain", True
                    values[c["name"]] = psycopg2.Binary(v) if (c["type"] == "bytea" and v is not None) else (
                        v.decode() if v is not None else None)
                    clean["%s|%s|%d" % (t["table"], c["name"], rid)] = ok
            names = ", ".join(qi(k) for k in values)
            marks = ", ".join(["%s"] * len(values))
            cur.execute("INSERT INTO %s.%s (%s) VALUES (%s)" % (qi(t["schema"]), qi(t["table"]), names, marks),
                        list(values.values()))
    conn.commit()
    json.dump({"tables": tables, "clean": clean, "before": snapshot(conn, tables)}, open(manifest_path, "w"))


def snapshot(conn, tables):
    """{table: {rid: {column: text or hex}}} as the database returns it."""
    out = {}
    cur = conn.cursor()
    for t in tables:
        sel = ", ".join(("encode(%s, 'hex')" if c["type"] == "bytea" else "%s::text") % qi(c["name"])
                        for c in t["columns"])
        cur.execute("SELECT rid, %s FROM %s.%s" % (sel, qi(t["schema"]), qi(t["table"])))
        out[t["table"]] = {str(r[0]): dict(zip((c["name"] for c in t["columns"]), r[1:])) for r in cur.fetchall()}
    conn.rollback()
    return out


# ---------------------------------------------------------------- checking

def raw_of(column, text):
    if text is None:
        return None
    return bytes.fromhex(text) if column["type"] == "bytea" else text.encode()


def check(conninfo, manifest_path, rotate_exit, verify_exit):
    keys = Keys()
    m = json.load(open(manifest_path))
    conn = psycopg2.connect(conninfo)
    after = snapshot(conn, m["tables"])
    errors = []
    stats = {"cells": 0, "changed": 0, "old_left": 0, "old_left_rotatable": 0, "tokens_rotated": 0}
    for t in m["tables"]:
        rotatable_table = t["shape"] != "no_pk"
        for rid, row in m["before"][t["table"]].items():
            for c in t["columns"]:
                stats["cells"] += 1
                where = "%s.%s rid %s" % (t["table"], c["name"], rid)
                b = raw_of(c, row[c["name"]])
                a = raw_of(c, after[t["table"]][rid][c["name"]])
                if a != b:
                    stats["changed"] += 1
                    err = same_but_tokens(keys, b, a)
                    if err:
                        errors.append("%s: %s" % (where, err))
                    stats["tokens_rotated"] += len(SPAN.findall(b or b""))
                old_here = a is not None and any((keys.open(s) or ("",))[0] == "old" for s in SPAN.findall(a))
                if old_here:
                    stats["old_left"] += 1
                    rotatable = rotatable_table and c["type"] in ("text", "varchar(2000)", "bytea")
                    if rotatable:
                        stats["old_left_rotatable"] += 1
                        if m["clean"].get("%s|%s|%s" % (t["table"], c["name"], rid), False):
                            errors.append("%s: a well-formed value of a rotatable column is still under the old key"
                                          % where)
    if stats["old_left"] > 0 and verify_exit == 0:
        errors.append("verify --require-new exited 0 while %d value(s) hold old-key tokens" % stats["old_left"])
    if stats["old_left"] > 0 and rotate_exit == 0:
        errors.append("rotate exited 0 while %d value(s) hold old-key tokens" % stats["old_left"])
    if rotate_exit not in (0, 3):
        errors.append("rotate exited %d" % rotate_exit)
    if verify_exit not in (0, 3):
        errors.append("verify exited %d" % verify_exit)
    return {"ok": not errors, "errors": errors[:40], "stats": stats}


def same_but_tokens(keys, b, a):
    """Why `a` is not `b` with its tokens rotated, or None."""
    if b is None or a is None:
        return "NULL changed"
    if len(a) != len(b):
        return "length changed from %d to %d" % (len(b), len(a))
    spans = [m.span() for m in SPAN.finditer(b)]
    pos = 0
    for s, e in spans:
        if a[pos:s] != b[pos:s]:
            return "bytes outside the tokens changed"
        old, new = keys.open(b[s:e]), keys.open(a[s:e])
        if b[s:e] != a[s:e]:
            if old is None or new is None:
                return "a token was rewritten into something that does not decrypt"
            if new[0] != "new":
                return "a token was rewritten under key %s" % new[0]
            if old[1:] != new[1:]:
                return "a rewritten token changed its plaintext, timestamp or format"
        pos = e
    if a[pos:] != b[pos:]:
        return "bytes outside the tokens changed"
    return None


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "seed" and len(sys.argv) == 5:
        seed(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "check" and len(sys.argv) == 6:
        print(json.dumps(check(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
    else:
        sys.exit(__doc__)
