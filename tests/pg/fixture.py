#!/usr/bin/python3
"""Test data for rekey's PostgreSQL integration tests, written and checked the
way the Python service does it (cryptography's Fernet, keys derived from
passphrases with PBKDF2-HMAC-SHA256, 100000 iterations, salt
faithful_finances_salt_v1).

  fixture.py seed  CONNINFO SPEC.json MANIFEST.json
      Creates the tables of SPEC and fills them; writes a manifest of every
      cell written (label, stored value, plaintext, timestamp) to MANIFEST.json.
  fixture.py check CONNINFO MANIFEST.json OPTIONS.json
      Reads every row back and checks it against the manifest; prints one JSON
      object: {"ok", "error_count", "errors", "rows", "counts"}.
  fixture.py encrypt ENV PLAINTEXT TIMESTAMP
      Prints a token of PLAINTEXT under the key in environment variable ENV.
  fixture.py tokens ENV COUNT PREFIX TIMESTAMP FORMAT
      Prints a JSON array of COUNT stored values, the i-th a token of the
      plaintext PREFIX + str(i) under the key in ENV, in FORMAT (plain or
      wrapped): what an application writes (tests/fault_injection_test.cpp).

Keys never travel on the command line: SPEC and OPTIONS name environment
variables holding passphrases.

SPEC:
{
  "seed": 1,
  "keys": {"old": "OLD_ENCRYPTION_KEY", "new": "NEW_ENCRYPTION_KEY"},  # label -> environment variable
  "tables": [{
    "schema": "public", "table": "users", "rows": 100,
    "pk": [{"name": "id", "type": "bigint", "gen": "bigint"}],
    "columns": [{"name": "phone_enc", "type": "text", "format": "plain",
                 "mix": {"old": 6, "new": 2, "garbage": 1, "null": 1}}]
  }]
}
  pk gen: "int" (1..n), "bigint" (large, negative too), "uuid", "text" (quotes,
  backslashes, braces, commas, spaces, non-ASCII), "mod:N" (i % N), "name" (i as text).
  column type: any SQL type; "bytea" columns get bytes. format: plain (the token
  text) or wrapped (urlsafe_b64encode(token), the service's encrypt_data).
  mix: weights of the key labels, "garbage" (undecryptable or not a token) and "null".
  Optional per table: "extra": ["note text DEFAULT 'x'", ...], more column definitions;
  "include": ["note", ...], non-key columns the primary key's index carries (INCLUDE).

OPTIONS:
{
  "final": "NEW_ENCRYPTION_KEY",         # the key every token must end under
  "dead": ["OLD_ENCRYPTION_KEY"],        # keys that must no longer decrypt a rewritten value
  "mode": "final",                       # final: every token rotated; partial: rotated or untouched;
                                         # back: as final, but a cell seeded under the final key may
                                         # have been rewritten too (rotated away and back: a rollback);
                                         # untouched: every cell exactly as seeded
  "state_schema": "rekey",               # where to look for failures; null: do not look
  "skip": [["public.users", ["5"]]]      # rows (display name, key texts) the test checks itself
}
A cell seeded under the final key must be byte-for-byte unchanged; garbage must
be byte-for-byte unchanged and (mode final) listed in STATE_SCHEMA.failures;
other tokens must decrypt under the final key to the same plaintext and
timestamp, in the same format, and not under any dead key.
"""
import base64
import json
import os
import random
import sys
import uuid

import psycopg2
import psycopg2.extras
from psycopg2 import sql
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

SALT = b"faithful_finances_salt_v1"
RESERVED = {
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "both", "case", "check", "column",
    "constraint", "create", "default", "desc", "distinct", "do", "else", "end", "false", "for", "foreign",
    "from", "grant", "group", "having", "in", "into", "limit", "not", "null", "or", "order", "primary",
    "select", "table", "to", "user", "where"}
MAX_ERRORS = 40

_fernets = {}


def fernet_from_env(env: str) -> Fernet:
    if env not in _fernets:
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=100000)
        _fernets[env] = Fernet(base64.urlsafe_b64encode(kdf.derive(os.environ[env].encode())))
    return _fernets[env]


def quote_if_needed(name: str) -> str:
    """rekey's quote_ident_if_needed: how it displays names (failures.table_name, reports)."""
    def lower(c):
        return "a" <= c <= "z"
    plain = (name != "" and (lower(name[0]) or name[0] == "_")
             and all(lower(c) or "0" <= c <= "9" or c in "_$" for c in name) and name not in RESERVED)
    return name if plain else '"' + name.replace('"', '""') + '"'


def display_name(schema: str, table: str) -> str:
    return quote_if_needed(schema) + "." + quote_if_needed(table)


def key_display(key_texts):
    """rekey's key_display: the value for a one-column key, a JSON array otherwise."""
    if len(key_texts) == 1:
        return key_texts[0]
    return json.dumps(key_texts, separators=(",", ":"), ensure_ascii=False)


def pk_value(gen: str, i: int, rows: int, rng: random.Random):
    if gen == "int":
        return i + 1
    if gen == "bigint":
        return (i - rows // 2) * 1000000007
    if gen == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if gen == "text":
        return f'user/{i:06d} "q" \\ {{a,b}} ü'
    if gen == "name":
        return f"k{i:06d}"
    if gen.startswith("mod:"):
        return i % int(gen[4:])
    raise ValueError("unknown pk gen " + gen)


def pk_text(value) -> str:
    """The key as PostgreSQL's ::text prints it."""
    return str(value)


def plaintext(rng: random.Random, column: str, i: int) -> bytes:
    r = rng.random()
    if r < 0.03:
        return b""
    if r < 0.06:
        return ("☎ +49 30 " + str(i) + " Grüße").encode()
    if r < 0.08:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))  # not UTF-8: rekey must not care
    if r < 0.10:
        return (f"{column}-{i}-" * 200).encode()[:2000]
    return (f"{column}-{i}-" + "x" * rng.randint(0, 40)).encode()


def timestamp(rng: random.Random) -> int:
    """Mostly recent times, sometimes edge ones (Fernet timestamps are 64-bit seconds)."""
    if rng.random() < 0.03:
        return rng.choice([0, 1, 2**31 - 1, 2**31, 2**32 + 5, 4_102_444_800, 2**40])
    return 1_500_000_000 + rng.randint(0, 200_000_000)


def garbage(rng: random.Random, is_bytea: bool, fernets) -> bytes:
    """An undecryptable value: not a token, a broken token, or a token under a key nobody has."""
    old = next(iter(fernets.values()))
    stranger = Fernet(base64.urlsafe_b64encode(rng.randbytes(32)))
    token = old.encrypt_at_time(b"truncated", 1_600_000_000)
    choices = [
        b"not a token",
        b"gAAAAAbroken",
        b"",
        "ünïcode ☃ not a token".encode(),
        base64.urlsafe_b64encode(rng.randbytes(60)),                       # base64, not a token
        stranger.encrypt_at_time(b"under no key we have", 1_600_000_000),  # a token under an unknown key
        base64.urlsafe_b64encode(stranger.encrypt(b"wrapped, unknown key")),
        token[:-1],                                                        # truncated token under the old key
        token[:40] + (b"A" if token[40:41] != b"A" else b"B") + token[41:],  # tampered token under the old key
    ]
    if is_bytea:
        choices.append(bytes([0, 255, 128, 10, 13, 92, 39, 34]) + rng.randbytes(20))
    return rng.choice(choices)


def seed(conninfo: str, spec_path: str, manifest_path: str) -> None:
    spec = json.load(open(spec_path))
    rng = random.Random(spec.get("seed", 1))
    labels = spec["keys"]
    fernets = {label: fernet_from_env(env) for label, env in labels.items()}
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    manifest = {"keys": labels, "tables": []}
    for t in spec["tables"]:
        schema, table = t.get("schema", "public"), t["table"]
        qtable = sql.Identifier(schema, table)
        defs = [sql.SQL("{} {} NOT NULL").format(sql.Identifier(k["name"]), sql.SQL(k["type"])) for k in t["pk"]]
        defs += [sql.SQL("{} {}").format(sql.Identifier(c["name"]), sql.SQL(c["type"])) for c in t["columns"]]
        defs += [sql.SQL(extra) for extra in t.get("extra", [])]
        pk = sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(sql.Identifier(k["name"]) for k in t["pk"]))
        if t.get("include"):
            pk += sql.SQL(" INCLUDE ({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in t["include"]))
        defs.append(pk)
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(qtable, sql.SQL(", ").join(defs)))
        rows_out = []
        db_rows = []
        n = t["rows"]
        for i in range(n):
            key = [pk_value(k["gen"], i, n, rng) for k in t["pk"]]
            cells = []
            values = []
            for c in t["columns"]:
                is_bytea = c["type"] == "bytea"
                mix = c.get("mix", {"old": 1})
                label = rng.choices(list(mix.keys()), weights=list(mix.values()))[0]
                if label == "null":
                    cells.append(None)
                    values.append(None)
                    continue
                if label == "garbage":
                    v = garbage(rng, is_bytea, fernets)
                    if not is_bytea and (b"\x00" in v or not _is_utf8(v)):
                        v = b"not utf-8 safe garbage"
                    cells.append({"l": "garbage", "v": v.hex()})
                else:
                    pt = plaintext(rng, c["name"], i)
                    ts = timestamp(rng)
                    v = fernets[label].encrypt_at_time(pt, ts)
                    if c.get("format", "plain") == "wrapped":
                        v = base64.urlsafe_b64encode(v)
                    cells.append({"l": label, "v": v.decode(), "p": pt.hex(), "t": ts})
                values.append(psycopg2.Binary(v) if is_bytea else v.decode())
            rows_out.append([[pk_text(k) for k in key], cells])
            db_rows.append(tuple(key) + tuple(values))
        cols = sql.SQL(", ").join(sql.Identifier(x["name"]) for x in t["pk"] + t["columns"])
        psycopg2.extras.execute_values(
            cur, sql.SQL("INSERT INTO {} ({}) VALUES %s").format(qtable, cols).as_string(cur), db_rows, page_size=2000)
        cur.execute(sql.SQL("ANALYZE {}").format(qtable))
        manifest["tables"].append({
            "schema": schema, "table": table, "display": display_name(schema, table),
            "pk": [k["name"] for k in t["pk"]],
            "columns": [{"name": c["name"], "type": c["type"], "format": c.get("format", "plain")} for c in t["columns"]],
            "rows": rows_out})
    conn.commit()
    conn.close()
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _is_token_text(b: bytes) -> bool:
    """True if `b` is url-safe base64 of bytes starting with Fernet's version byte 0x80."""
    try:
        return base64.urlsafe_b64decode(b)[:1] == b"\x80" and b[:1] == b"g"
    except Exception:
        return False


def _unwrap(stored: bytes, fmt: str):
    """The token inside a stored value of format `fmt`, or None if the shape is wrong.
    plain: the token text itself; wrapped: urlsafe_b64encode(token text)."""
    if fmt == "wrapped":
        try:
            token = base64.urlsafe_b64decode(stored)
        except Exception:
            return None
        if base64.urlsafe_b64encode(token) != stored or not _is_token_text(token):
            return None
        return token
    return stored if _is_token_text(stored) else None


def check(conninfo: str, manifest_path: str, options_path: str) -> dict:
    manifest = json.load(open(manifest_path))
    opts = json.load(open(options_path))
    labels = manifest["keys"]
    final_env = opts.get("final", "NEW_ENCRYPTION_KEY")
    final = fernet_from_env(final_env)
    dead = [fernet_from_env(e) for e in opts.get("dead", [])]
    mode = opts.get("mode", "final")
    back = mode == "back"
    if back:
        mode = "final"
    state_schema = opts.get("state_schema", "rekey")
    skip = {(d, tuple(k)) for d, k in opts.get("skip", [])}
    errors = []
    error_count = 0

    def err(msg):
        nonlocal error_count
        error_count += 1
        if len(errors) < MAX_ERRORS:
            errors.append(msg)

    conn = psycopg2.connect(conninfo)
    conn.set_session(readonly=True, autocommit=True)
    cur = conn.cursor()
    failures = set()
    if state_schema is not None and mode == "final":
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (state_schema,))
        if cur.fetchone() is None:
            err(f"state schema {state_schema} does not exist")
        else:
            cur.execute(sql.SQL("SELECT table_name, column_name, primary_key FROM {}.failures").format(
                sql.Identifier(state_schema)))
            failures = {tuple(r) for r in cur.fetchall()}
    listed = set()
    counts = {}
    total_rows = 0
    for t in manifest["tables"]:
        display = t["display"]
        qtable = sql.Identifier(t["schema"], t["table"])
        cols = t["columns"]
        select = sql.SQL("SELECT {}, {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(k)) for k in t["pk"]),
            # ::text: character(n) values without their padding, as the service sees them.
            sql.SQL(", ").join(sql.SQL("{}" if c["type"] == "bytea" else "{}::text").format(sql.Identifier(c["name"]))
                               for c in cols), qtable)
        cur.execute(select)
        nk = len(t["pk"])
        actual = {}
        for r in cur.fetchall():
            actual[tuple(r[:nk])] = r[nk:]
        total_rows += len(actual)
        if len(actual) != len(t["rows"]):
            err(f"{display}: {len(actual)} rows, {len(t['rows'])} seeded")
        table_counts = counts.setdefault(display, {})
        for c in cols:
            table_counts[c["name"]] = {"rotated": 0, "already_new": 0, "null": 0, "undecryptable": 0}
        for key, cells in t["rows"]:
            key = tuple(key)
            where = f"{display} key {list(key)}"
            if key not in actual:
                err(f"{where}: row lost")
                continue
            row = actual[key]
            for ci, (c, cell) in enumerate(zip(cols, cells)):
                name = c["name"]
                cnt = table_counts[name]
                value = row[ci]
                if value is not None:
                    value = bytes(value) if isinstance(value, memoryview) else value.encode()
                if cell is None:
                    cnt["null"] += 1
                    if value is not None:
                        err(f"{where} {name}: NULL became a value")
                    continue
                if cell["l"] == "garbage":
                    cnt["undecryptable"] += 1
                    listed.add((display, name, key_display(list(key))))
                    if (display, key) in skip:
                        continue
                    if value != bytes.fromhex(cell["v"]):
                        err(f"{where} {name}: undecryptable value changed: {cell['v']} -> {value!r}")
                    if mode == "final" and state_schema is not None and \
                            (display, name, key_display(list(key))) not in failures:
                        err(f"{where} {name}: undecryptable value not listed in {state_schema}.failures")
                    continue
                seeded = cell["v"].encode()
                env = labels[cell["l"]]
                cnt["already_new" if env == final_env else "rotated"] += 1
                if (display, key) in skip:
                    continue
                if value is None:
                    err(f"{where} {name}: value became NULL")
                    continue
                if value == seeded:
                    if env != final_env and mode == "final":
                        err(f"{where} {name}: still as seeded under {env}")
                    continue
                if env == final_env and not back:
                    err(f"{where} {name}: value under the final key was rewritten")
                    continue
                if mode == "untouched":
                    err(f"{where} {name}: value was rewritten")
                    continue
                token = _unwrap(value, c["format"])
                if token is None:
                    err(f"{where} {name}: not a {c['format']} token any more: {value[:24]!r}")
                    continue
                try:
                    pt = final.decrypt(token)
                    ts = final.extract_timestamp(token)
                except InvalidToken:
                    err(f"{where} {name}: does not decrypt under the final key")
                    continue
                if pt.hex() != cell["p"]:
                    err(f"{where} {name}: plaintext differs")
                if ts != cell["t"]:
                    err(f"{where} {name}: timestamp {ts}, seeded {cell['t']}")
                for f in dead:
                    try:
                        f.decrypt(token)
                        err(f"{where} {name}: still decrypts under a dead key")
                    except InvalidToken:
                        pass
    if mode == "final" and state_schema is not None:
        ours = {d for d in counts}
        for f in sorted(failures - listed):
            if f[0] in ours:
                err(f"{state_schema}.failures lists {list(f)}, which is not an undecryptable seeded value")
    conn.close()
    return {"ok": error_count == 0, "error_count": error_count, "errors": errors, "rows": total_rows,
            "counts": counts}


def tokens(env: str, count: int, prefix: str, ts: int, fmt: str) -> list:
    """COUNT stored values of the plaintexts PREFIX0, PREFIX1, ... under the key in ENV."""
    if fmt not in ("plain", "wrapped"):
        raise ValueError("unknown format " + fmt)
    f = fernet_from_env(env)
    out = []
    for i in range(count):
        v = f.encrypt_at_time((prefix + str(i)).encode(), ts)
        if fmt == "wrapped":
            v = base64.urlsafe_b64encode(v)
        out.append(v.decode())
    return out


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "seed" and len(sys.argv) == 5:
        seed(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "check" and len(sys.argv) == 5:
        json.dump(check(sys.argv[2], sys.argv[3], sys.argv[4]), sys.stdout)
    elif cmd == "encrypt" and len(sys.argv) == 5:
        sys.stdout.write(fernet_from_env(sys.argv[2]).encrypt_at_time(sys.argv[3].encode(), int(sys.argv[4])).decode())
    elif cmd == "tokens" and len(sys.argv) == 7:
        json.dump(tokens(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]), sys.stdout)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
