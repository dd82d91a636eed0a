#!/usr/bin/python3
"""Python side of rekey's Fernet interop tests (tests/fernet_interop_test.cpp).

Usage: fernet_peer.py IN.json OUT.json

IN.json:
  {"keys": {NAME: {"passphrase": TEXT} | {"fernet": TEXT}},
   "ops": [OP, ...]}
OP is one of
  {"op": "encrypt", "key": NAME, "pt": HEX, "ts": INT, "wrap": BOOL}
  {"op": "decrypt", "key": NAME, "value": HEX, "wrap": BOOL}
  {"op": "rotate", "keys": [NEW, OLD, ...], "value": HEX, "wrap": BOOL}
Values are the stored bytes in hex. "wrap" means the stored value is
base64.urlsafe_b64encode(token), as the service's encrypt_data writes it.

OUT.json: {"results": [RESULT, ...]}, one per op:
  encrypt -> {"value": HEX}
  decrypt -> {"ok": BOOL, "pt": HEX, "ts": INT}
  rotate  -> {"ok": BOOL, "value": HEX}

Keys are made exactly as the service makes them: a passphrase through
PBKDF2-HMAC-SHA256 (salt faithful_finances_salt_v1, 100000 iterations) and
url-safe base64, a Fernet key passed to Fernet() as given.
"""
import base64
import binascii
import json
import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

SALT = b"faithful_finances_salt_v1"
ITERATIONS = 100000


def make_fernet(spec):
    if "passphrase" in spec:
        kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=SALT, iterations=ITERATIONS)
        return Fernet(base64.urlsafe_b64encode(kdf.derive(spec["passphrase"].encode("utf-8"))))
    return Fernet(spec["fernet"])


def unwrap(value, wrap):
    # Bytes in, as rekey reads them; the service decodes its column the same way.
    return base64.urlsafe_b64decode(value) if wrap else value


def main():
    with open(sys.argv[1], "rb") as f:
        request = json.load(f)
    fernets = {name: make_fernet(spec) for name, spec in request["keys"].items()}
    multis = {}
    results = []
    for op in request["ops"]:
        kind = op["op"]
        if kind == "encrypt":
            token = fernets[op["key"]].encrypt_at_time(bytes.fromhex(op["pt"]), op["ts"])
            if op["wrap"]:
                token = base64.urlsafe_b64encode(token)
            results.append({"value": token.hex()})
        elif kind == "decrypt":
            value = bytes.fromhex(op["value"])
            try:
                token = unwrap(value, op["wrap"])
                f = fernets[op["key"]]
                pt = f.decrypt(token)
                results.append({"ok": True, "pt": pt.hex(), "ts": f.extract_timestamp(token)})
            except (binascii.Error, InvalidToken):
                results.append({"ok": False, "pt": "", "ts": 0})
        elif kind == "rotate":
            names = tuple(op["keys"])
            if names not in multis:
                multis[names] = MultiFernet([fernets[n] for n in names])
            try:
                rotated = multis[names].rotate(unwrap(bytes.fromhex(op["value"]), op["wrap"]))
                if op["wrap"]:
                    rotated = base64.urlsafe_b64encode(rotated)
                results.append({"ok": True, "value": rotated.hex()})
            except (binascii.Error, InvalidToken):
                results.append({"ok": False, "value": ""})
        else:
            raise ValueError("unknown op %r" % kind)
    with open(sys.argv[2], "w") as f:
        json.dump({"results": results}, f)


if __name__ == "__main__":
    main()
