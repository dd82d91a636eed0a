#!/usr/bin/python3
"""Builds a benchmark table the way the service writes it.

make_table.py CONNINFO TABLE ROWS
Two encrypted columns: phone_enc (plain token text) and account_enc (wrapped:
urlsafe_b64encode of the token text, as the service's encrypt_data stores
it), about 6% NULLs each, under the passphrase key in OLD_ENCRYPTION_KEY
(PBKDF2-HMAC-SHA256, 100,000 iterations, salt faithful_finances_salt_v1).
Tokens are made by Python's cryptography on all cores and loaded with COPY.
"""
import base64
import io
import multiprocessing
import os
import random
import sys

import psycopg2
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

SALT = b"faithful_finances_salt_v1"


def fernet_from_passphrase(passphrase: str) -> Fernet:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=100000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode())))


def make_chunk(args):
    start, end, key = args
    f = fernet_from_passphrase(key)
    rng = random.Random(start)
    out = io.StringIO()
    for i in range(start, end):
        phone = "\\N"
        account = "\\N"
        if rng.random() >= 0.06:
            phone = f.encrypt(f"+1-555-{rng.randrange(10**7):07d}".encode()).decode()
        if rng.random() >= 0.06:
            token = f.encrypt(f"DE{rng.randrange(10**20):020d}|{rng.randrange(10**9):09d}".encode())
            account = base64.urlsafe_b64encode(token).decode()
        out.write(f"{i}\t{phone}\t{account}\n")
    return out.getvalue()


def main():
    conninfo, table, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    key = os.environ["OLD_ENCRYPTION_KEY"]
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, phone_enc text, account_enc text)")
    chunk = 20000
    jobs = [(s, min(s + chunk, rows + 1), key) for s in range(1, rows + 1, chunk)]
    with multiprocessing.Pool() as pool:
        for data in pool.imap(make_chunk, jobs):
            cur.copy_expert(f"COPY {table} (id, phone_enc, account_enc) FROM STDIN", io.StringIO(data))
    cur.execute(f"ANALYZE {table}")
    conn.commit()


if __name__ == "__main__":
    main()
