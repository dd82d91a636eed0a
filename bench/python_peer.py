#!/usr/bin/python3
"""The peer rekey is measured against: a careful batched rotation in Python.

python_peer.py CONNINFO TABLE [MAX_ROWS]
Keyset batches of 5,000 on the primary key, MultiFernet([new, old]).rotate on
each value (unwrapping/re-wrapping the wrapped column), one
UPDATE ... FROM (VALUES ...) per batch, committed per batch. Prints rows and
seconds as JSON.
"""
import base64
import json
import os
import sys
import time

import psycopg2
import psycopg2.extras
from cryptography.fernet import MultiFernet

from make_table import fernet_from_passphrase


def main():
    conninfo, table = sys.argv[1], sys.argv[2]
    max_rows = int(sys.argv[3]) if len(sys.argv) > 3 else None
    mf = MultiFernet([fernet_from_passphrase(os.environ["NEW_ENCRYPTION_KEY"]),
                      fernet_from_passphrase(os.environ["OLD_ENCRYPTION_KEY"])])
    conn = psycopg2.connect(conninfo)
    cur = conn.cursor()
    last, rows, started = 0, 0, time.monotonic()
    while max_rows is None or rows < max_rows:
        cur.execute(f"SELECT id, phone_enc, account_enc FROM {table} WHERE id > %s ORDER BY id LIMIT 5000", (last,))
        batch = cur.fetchall()
        if not batch:
            break
        updates = []
        for pk, phone, account in batch:
            new_phone = mf.rotate(phone.encode()).decode() if phone is not None else None
            new_account = (base64.urlsafe_b64encode(mf.rotate(base64.urlsafe_b64decode(account))).decode()
                           if account is not None else None)
            updates.append((pk, new_phone, new_account))
        psycopg2.extras.execute_values(
            cur, f"UPDATE {table} AS t SET phone_enc = v.p, account_enc = v.a "
                 f"FROM (VALUES %s) AS v(id, p, a) WHERE t.id = v.id::bigint", updates)
        conn.commit()
        rows += len(batch)
        last = batch[-1][0]
    print(json.dumps({"rows": rows, "seconds": time.monotonic() - started}))


if __name__ == "__main__":
    main()
