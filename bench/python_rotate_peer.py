#!/usr/bin/python3
"""Times Python's MultiFernet([new, old]).rotate for rekey's crypto benchmark.

Usage: python_rotate_peer.py IN.json OUT.json   (started by rekey_bench)

IN.json: {"new": KEY, "old": KEY, "seconds": S,
          "cases": [{"name": N, "wrapped": BOOL, "values": [TEXT, ...]}]}
OUT.json: {"rates": {N: rotations_per_second}}

Values are rotated as the service would store them: a plain value is the
token itself; a wrapped value is urlsafe_b64encode(token), so it is unwrapped
with urlsafe_b64decode, rotated and re-wrapped with urlsafe_b64encode. Each
case is timed three times for at least S seconds of this thread's CPU time
(as rekey_bench measures itself); the median is reported.
"""
import base64
import json
import sys
import time

from cryptography.fernet import Fernet, MultiFernet


def rate(fn, values, seconds):
    done = 0
    start = time.thread_time()  # CPU time of this thread, like rekey_bench
    while True:
        for v in values:
            fn(v)
        done += len(values)
        elapsed = time.thread_time() - start
        if elapsed >= seconds:
            return done / elapsed


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    mf = MultiFernet([Fernet(request["new"]), Fernet(request["old"])])
    rotate = mf.rotate
    b64d = base64.urlsafe_b64decode
    b64e = base64.urlsafe_b64encode

    def rotate_wrapped(v):
        return b64e(rotate(b64d(v)))

    rates = {}
    for case in request["cases"]:
        values = [v.encode("ascii") for v in case["values"]]
        fn = rotate_wrapped if case["wrapped"] else rotate
        # Sanity: the rotation reads back under the new key only.
        check = fn(values[0])
        Fernet(request["new"]).decrypt(b64d(check) if case["wrapped"] else check)
        trials = sorted(rate(fn, values, request["seconds"]) for _ in range(3))
        rates[case["name"]] = trials[1]
    with open(sys.argv[2], "w") as f:
        json.dump({"rates": rates}, f)


if __name__ == "__main__":
    main()
