#!/usr/bin/python3
"""Tables for rekey's write-path tests (tests/writes_it_test.cpp), written and
judged by Python's cryptography: values of a megabyte, and keys in a
SQL_ASCII database that are not UTF-8.

  writes.py large-fill  CONNINFO ROWS SIZE
      CREATE TABLE big (id int PRIMARY KEY, secret_enc text) with ROWS rows,
      each a token under OLD_ENCRYPTION_KEY of about SIZE bytes.
  writes.py large-check CONNINFO ROWS SIZE
      Every row under NEW_ENCRYPTION_KEY only, to its plaintext and timestamp.
  writes.py ascii-fill  CONNINFO MANIFEST.json
      CREATE TABLE people (name text PRIMARY KEY, secret_enc text) whose keys
      hold bytes that are not UTF-8 ('\\xff', Latin-1 names); every 20th token
      is under ANOTHER_KEY (no key rekey is given). Writes what it wrote to
      MANIFEST.json (keys in hex).
  writes.py ascii-check CONNINFO MANIFEST.json
      Good rows under NEW_ENCRYPTION_KEY only, to their plaintext and
      timestamp; bad rows byte-identical; rekey.failures lists exactly the
      bad rows' keys, byte for byte.

Checks print {"ok", "rows", "errors"}. Keys never travel on the command
line: passphrases come from the environment.
"""
import json
import sys

import psycopg2
from cryptography.fernet import InvalidToken

from fixture import MAX_ERRORS, fernet_from_env

TIMESTAMP = 1700000000


def large_plaintext(i: int, size: int) -> bytes:
    # A token is 4/3 of its plaintext plus 73 bytes in base64.
    return (b"row %d " % i) * (size * 3 // 4 // len(b"row %d " % i))


def large_fill(conninfo: str, rows: int, size: int) -> None:
    old = fernet_from_env("OLD_ENCRYPTION_KEY")
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE big (id int PRIMARY KEY, secret_enc text)")
        for i in range(1, rows + 1):
            token = old.encrypt_at_time(large_plaintext(i, size), TIMESTAMP + i).decode()
            cur.execute("INSERT INTO big VALUES (%s, %s)", (i, token))


def new_only(token: str, plaintext: bytes, at: int, errors: list, where: str) -> None:
    """Records an error unless `token` is under the new key only, to `plaintext` at `at`."""
    new, old = fernet_from_env("NEW_ENCRYPTION_KEY"), fernet_from_env("OLD_ENCRYPTION_KEY")
    try:
        if new.decrypt(token.encode()) != plaintext:
            errors.append(where + ": wrong plaintext")
        if new.extract_timestamp(token.encode()) != at:
            errors.append(where + ": timestamp changed")
    except InvalidToken:
        errors.append(where + ": not under the new key")
        return
    try:
        old.decrypt(token.encode())
        errors.append(where + ": still opens under the old key")
    except InvalidToken:
        pass


def large_check(conninfo: str, rows: int, size: int) -> dict:
    errors, seen = [], 0
    with psycopg2.connect(conninfo) as conn, conn.cursor(name="rows") as cur:
        cur.itersize = 8
        cur.execute("SELECT id, secret_enc FROM big ORDER BY id")
        for i, token in cur:
            seen += 1
            new_only(token, large_plaintext(i, size), TIMESTAMP + i, errors, "row %d" % i)
    if seen != rows:
        errors.append("%d rows, expected %d" % (seen, rows))
    return {"ok": not errors, "rows": seen, "errors": errors[:MAX_ERRORS]}


def ascii_keys() -> list:
    keys = [b"\xff", b"M\xfcller", b"caf\xe9", b"\xc3\x28", b"plain"]
    keys += [b"k%04d" % i + (b"\xe9\xff" if i % 3 == 0 else b"\xe4" if i % 3 == 1 else b"") for i in range(295)]
    return keys


def ascii_fill(conninfo: str, manifest_path: str) -> None:
    old, other = fernet_from_env("OLD_ENCRYPTION_KEY"), fernet_from_env("ANOTHER_KEY")
    manifest = []
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE people (name text PRIMARY KEY, secret_enc text)")
        for n, key in enumerate(ascii_keys()):
            bad = n % 20 == 7
            plaintext = b"secret of row %d" % n
            token = (other if bad else old).encrypt_at_time(plaintext, TIMESTAMP + n).decode()
            cur.execute("INSERT INTO people VALUES (convert_from(%s, 'SQL_ASCII'), %s)", (key, token))
            manifest.append({"key": key.hex(), "bad": bad, "token": token, "plaintext": plaintext.hex(),
                             "at": TIMESTAMP + n})
    json.dump(manifest, open(manifest_path, "w"))


def ascii_check(conninfo: str, manifest_path: str) -> dict:
    manifest = {bytes.fromhex(m["key"]): m for m in json.load(open(manifest_path))}
    errors = []
    with psycopg2.connect(conninfo) as conn, conn.cursor() as cur:
        cur.execute("SELECT convert_to(name, 'SQL_ASCII'), secret_enc FROM people")
        rows = {bytes(k): v for k, v in cur.fetchall()}
        cur.execute("SELECT convert_to(primary_key, 'SQL_ASCII') FROM rekey.failures")
        failures = sorted(bytes(k) for (k,) in cur.fetchall())
    if set(rows) != set(manifest):
        errors.append("the keys changed")
    for key, m in manifest.items():
        token = rows.get(key)
        if token is None:
            continue
        if m["bad"]:
            if token != m["token"]:
                errors.append("bad row %r was changed" % key)
        else:
            new_only(token, bytes.fromhex(m["plaintext"]), m["at"], errors, "row %r" % key)
    expected = sorted(k for k, m in manifest.items() if m["bad"])
    if failures != expected:
        errors.append("failures list %r, expected %r" % (failures[:5], expected[:5]))
    return {"ok": not errors, "rows": len(rows), "failures": len(failures), "errors": errors[:MAX_ERRORS]}


def main() -> None:
    command, conninfo = sys.argv[1], sys.argv[2]
    if command == "large-fill":
        large_fill(conninfo, int(sys.argv[3]), int(sys.argv[4]))
    elif command == "large-check":
        print(json.dumps(large_check(conninfo, int(sys.argv[3]), int(sys.argv[4]))))
    elif command == "ascii-fill":
        ascii_fill(conninfo, sys.argv[3])
    elif command == "ascii-check":
        print(json.dumps(ascii_check(conninfo, sys.argv[3])))
    else:
        sys.exit("unknown command " + command)


if __name__ == "__main__":
    main()
