#!/usr/bin/python3
"""The demo's database, written the way the Python service writes it.

demo_data.py create CONNINFO ROWS   users (phone numbers, plain tokens) and bank
                                    accounts (account and routing numbers, wrapped
                                    tokens), under ENCRYPTION_KEY
demo_data.py check CONNINFO         reads every value back as the service would with
                                    NEW_ENCRYPTION_KEY; exits 1 if any fails
The keys are passphrases: PBKDF2-HMAC-SHA256, 100,000 iterations, salt
faithful_finances_salt_v1, as the service derives them.
"""
import base64
import os
import random
import sys
import uuid

import psycopg2
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC


def fernet(passphrase):
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=b"faithful_finances_salt_v1", iterations=100000)
    return Fernet(base64.urlsafe_b64encode(kdf.derive(passphrase.encode())))


def encrypt_data(f, text):  # the service's wrapped form
    return base64.urlsafe_b64encode(f.encrypt(text.encode())).decode()


def decrypt_data(f, value):
    return f.decrypt(base64.urlsafe_b64decode(value.encode())).decode()


def create(conninfo, rows):
    f = fernet(os.environ["ENCRYPTION_KEY"])
    rng = random.Random(7)
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    cur.execute("""
        CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, phone_enc text, notes text);
        CREATE TABLE bank_accounts (id uuid PRIMARY KEY, user_id bigint REFERENCES users(id),
                                    account_number_enc text, routing_number_enc text, nickname text);""")
    for i in range(rows):
        phone = f"+1-555-{rng.randrange(10**7):07d}"
        cur.execute("INSERT INTO users (email, phone_enc, notes) VALUES (%s, %s, %s) RETURNING id",
                    (f"user{i}@example.com", f.encrypt(phone.encode()).decode() if rng.random() > 0.05 else None,
                     '{"newsletter": true}'))
        user_id = cur.fetchone()[0]
        for _ in range(rng.choice([0, 1, 1, 2])):
            cur.execute("INSERT INTO bank_accounts VALUES (%s, %s, %s, %s, %s)",
                        (str(uuid.UUID(int=rng.getrandbits(128))), user_id,
                         encrypt_data(f, f"{rng.randrange(10**12):012d}"),
                         encrypt_data(f, f"{rng.randrange(10**9):09d}"), rng.choice(["checking", "savings"])))
    cur.execute("ANALYZE")
    conn.commit()


def check(conninfo):
    f = fernet(os.environ["NEW_ENCRYPTION_KEY"])
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    ok = 0
    cur.execute("SELECT phone_enc FROM users WHERE phone_enc IS NOT NULL")
    for (v,) in cur.fetchall():
        f.decrypt(v.encode())
        ok += 1
    cur.execute("SELECT account_number_enc, routing_number_enc FROM bank_accounts")
    for a, r in cur.fetchall():
        decrypt_data(f, a)
        decrypt_data(f, r)
        ok += 2
    print(f"the service, holding only the new key, read all {ok} encrypted values")


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(sys.argv[2], int(sys.argv[3]))
    else:
        check(sys.argv[2])
