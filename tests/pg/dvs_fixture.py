#!/usr/bin/python3
"""Test data for tests/discover_verify_status_test.cpp, written the way the
Python service writes it: encrypted columns in several schemas (mixed-case
and space-containing names, a uuid key, a composite key, a 98%-NULL column,
bytea and wrapped tokens) beside decoys (emails, text, JSON, base64 of
random bytes, random bytea, a table without a primary key).

  dvs_fixture.py seed   CONNINFO ROWS   creates and fills the tables
  dvs_fixture.py census CONNINFO        prints, per column, the values under
      NEW_ENCRYPTION_KEY / OLD_ENCRYPTION_KEY, NULL, and other, by trial
      decryption: {"schema|table|column": {total, null, new, old, other}}

Keys come from the environment (NEW_ENCRYPTION_KEY, OLD_ENCRYPTION_KEY).
"""
import base64, json, os, random, sys, uuid
import psycopg2
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

def fernet(env):
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"faithful_finances_salt_v1", iterations=100000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(os.environ[env].encode())))

DDL = """
CREATE SCHEMA billing;
CREATE SCHEMA "Vault Data";
CREATE TABLE public.users (id int PRIMARY KEY, email text, phone_enc text, notes text, prefs text);
CREATE TABLE "Vault Data"."Accounts" (id uuid PRIMARY KEY, "Routing Enc" text, "Blob" bytea, "Random B64" text,
  "Sparse Enc" varchar(600), "Label" varchar(40), "Raw Bytes" bytea);
CREATE TABLE billing."Invoice Lines" (invoice_id int, line_no int, card_enc text, memo char(24),
  PRIMARY KEY (invoice_id, line_no));
CREATE TABLE public.audit_log (at timestamptz DEFAULT now(), payload text, actor varchar(80));
"""
CENSUS = [("public", "users", "phone_enc"), ("Vault Data", "Accounts", "Routing Enc"), ("Vault Data", "Accounts", "Blob"),
          ("Vault Data", "Accounts", "Sparse Enc"), ("billing", "Invoice Lines", "card_enc"),
          ("public", "users", "email"), ("Vault Data", "Accounts", "Random B64")]

def seed(conn, rows):
    old, new = fernet("OLD_ENCRYPTION_KEY"), fernet("NEW_ENCRYPTION_KEY")
    rng = random.Random(11)
    tok = lambda pt: (old if rng.random() < 0.75 else new).encrypt(pt.encode())
    cur = conn.cursor()
    cur.execute(DDL)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    for i in range(rows):
        cur.execute("INSERT INTO public.users VALUES (%s, %s, %s, %s, %s)",
                    (i, f"user{i}@example.com", None if i % 10 == 0 else tok(f"+1555{i:07d}").decode(),
                     " ".join(rng.choice(words) for _ in range(6)), json.dumps({"theme": "dark", "n": i})))
        cur.execute('INSERT INTO "Vault Data"."Accounts" VALUES (%s, %s, %s, %s, %s, %s, %s)',
                    (str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                     base64.urlsafe_b64encode(tok(f"routing {i}")).decode(),
                     psycopg2.Binary(tok(f"blob {i}" * 3)),
                     base64.urlsafe_b64encode(rng.randbytes(80)).decode(),
                     tok(f"sparse {i}").decode() if i % 50 == 7 else None,
                     f"Label {i}", psycopg2.Binary(rng.randbytes(60))))
    for i in range(max(1, rows // 5)):
        cur.execute('INSERT INTO billing."Invoice Lines" VALUES (%s, %s, %s, %s)',
                    (i // 3, i % 3, old.encrypt(f"4111 {i}".encode()).decode(), f"memo {i}"))
        cur.execute("INSERT INTO public.audit_log (payload, actor) VALUES (%s, %s)",
                    (json.dumps({"event": "login", "id": i}), f"admin{i}@example.com"))
    conn.commit()

def census(conn):
    keys = {"new": fernet("NEW_ENCRYPTION_KEY"), "old": fernet("OLD_ENCRYPTION_KEY")}
    out = {}
    cur = conn.cursor()
    q = lambda s: '"' + s.replace('"', '""') + '"'
    for schema, table, column in CENSUS:
        cur.execute(f"SELECT {q(column)} FROM {q(schema)}.{q(table)}")
        c = {"total": 0, "null": 0, "new": 0, "old": 0, "other": 0}
        for (v,) in cur.fetchall():
            c["total"] += 1
            if v is None:
                c["null"] += 1
                continue
            raw = bytes(v) if isinstance(v, memoryview) else v.encode()
            candidates = [raw]
            try:
                candidates.append(base64.urlsafe_b64decode(raw))
            except Exception:
                pass
            label = "other"
            for cand in candidates:
                for name, f in keys.items():
                    try:
                        f.decrypt(cand)
                        label = name
                        break
                    except Exception:
                        pass
                if label != "other":
                    break
            c[label] += 1
        out[f"{schema}|{table}|{column}"] = c
    print(json.dumps(out))

conn = psycopg2.connect(sys.argv[2])
seed(conn, int(sys.argv[3])) if sys.argv[1] == "seed" else census(conn)
