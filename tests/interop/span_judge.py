#!/usr/bin/python3
"""Python judge of rekey's in-place rotation (tests/token_spans_interop_test.cpp).

Usage: span_judge.py IN.json   (answer on stdout)

IN.json:
  {"keys": {"new": HEX32, "old": [HEX32, ...]},
   "cases": [{"value": HEX,
              "rotate": {"outcome": NAME, "rotated": HEX, "key_index": INT, "tokens": INT},
              "inspect": {"outcome": NAME, "key_index": INT}}, ...]}
Keys are raw 32-byte Fernet keys; the keyring tries the new key, then the old
keys in order (key_index 0 is the new key, i > 0 old key i-1). Outcomes are
rekey's names (rotated, already_new, under_old_key, undecryptable, not_a_token).

Answer: {"results": [{"kind": KIND, "expect": EXPECT, "problems": [TEXT, ...]}, ...]}
KIND is how this judge reads the value, with its own regular expressions:
  single   only [A-Za-z0-9_-], then at most two '=': one token, read as Python reads it
  unclear  a token prefix right after an alphabet character
  spans    tokens found as spans: runs starting with gAAAAA or Z0FBQUFB, plus their padding
  lenient  none of these: the whole value read as Python reads it
EXPECT is what rekey must do: rotate, already_new, fail, or old_untouched
(inspect says old key, rotate refuses). An empty problem list means rekey's
answers agree with Python's reading and a rotated value keeps every byte
outside its tokens, each token decrypting under the new key only, to the same
plaintext and timestamp, in the same format. Problems never quote plaintext.
"""
import base64
import binascii
import json
import re
import sys

from cryptography.fernet import Fernet, InvalidToken

SINGLE = re.compile(rb"[A-Za-z0-9_-]*={0,2}")
UNCLEAR = re.compile(rb"[A-Za-z0-9_-](?:gAAAAA|Z0FBQUFB)")
SPAN = re.compile(rb"(?<![A-Za-z0-9_-])(?:gAAAAA|Z0FBQUFB)[A-Za-z0-9_-]*")
FAILURES = ("undecryptable", "not_a_token")


def spans(value):
    """(start, end) of each token span: the run, then the '=' its length calls for."""
    out = []
    for m in SPAN.finditer(value):
        need = {2: 2, 3: 1}.get(len(m.group()) % 4, 0)
        end = m.end()
        while need > 0 and value[end:end + 1] == b"=":
            end += 1
            need -= 1
        out.append((m.start(), end))
    return out


def gaps(value, places):
    """The bytes between and around the spans."""
    out, at = [], 0
    for start, end in places:
        out.append(value[at:start])
        at = end
    out.append(value[at:])
    return out


class Ring:
    def __init__(self, keys):
        self.fernets = [Fernet(base64.urlsafe_b64encode(bytes.fromhex(k))) for k in [keys["new"]] + keys["old"]]

    def read(self, text, fernets=None):
        """(key index, format, plaintext, timestamp) of one token's text, or None.

        Plain first, then wrapped (urlsafe_b64decode once more), each under the
        keys in order, as the service reads its column."""
        for fmt in ("plain", "wrapped"):
            try:
                token = text if fmt == "plain" else base64.urlsafe_b64decode(text)
            except (binascii.Error, ValueError):
                continue
            for i, f in enumerate(fernets if fernets is not None else self.fernets):
                try:
                    return i, fmt, f.decrypt(token), f.extract_timestamp(token)
                except (InvalidToken, binascii.Error, ValueError, TypeError):
                    continue
        return None

    def read_under_new_only(self, text, want, problems, where):
        """Checks `text` reads under the new key as `want` and under no old key."""
        got = self.read(text, self.fernets[:1])
        if got is None:
            problems.append("%s: does not decrypt under the new key" % where)
        elif got[1:] != want[1:]:
            problems.append("%s: format, plaintext or timestamp changed (format %s -> %s)" % (where, want[1], got[1]))
        for i, f in enumerate(self.fernets[1:], start=1):
            if self.read(text, [f]) is not None:
                problems.append("%s: still decrypts under old key %d" % (where, i))


def classify(ring, value):
    """(kind, readings of its tokens in order; None for a token no key reads)."""
    if SINGLE.fullmatch(value):
        return "single", [ring.read(value)]
    if UNCLEAR.search(value):
        return "unclear", []
    places = spans(value)
    if places:
        return "spans", [ring.read(value[s:e]) for s, e in places]
    return "lenient", [ring.read(value)]


def expectation(kind, readings):
    if kind == "unclear" or any(r is None for r in readings):
        return "fail"
    if all(r[0] == 0 for r in readings):
        return "already_new"
    return "old_untouched" if kind == "lenient" else "rotate"


def judge(ring, case):
    value = bytes.fromhex(case["value"])
    rot, ins = case["rotate"], case["inspect"]
    kind, readings = classify(ring, value)
    expect = expectation(kind, readings)
    problems = []
    first_old = next((r[0] for r in readings if r is not None and r[0] > 0), 0)

    want_rotate = {"rotate": ("rotated",), "already_new": ("already_new",)}.get(expect, FAILURES)
    want_inspect = {"already_new": ("already_new",), "fail": FAILURES}.get(expect, ("under_old_key",))
    if rot["outcome"] not in want_rotate:
        problems.append("rotate said %s, Python expects %s (%s)" % (rot["outcome"], expect, kind))
    if ins["outcome"] not in want_inspect:
        problems.append("inspect said %s, Python expects %s (%s)" % (ins["outcome"], expect, kind))
    if expect in ("rotate", "old_untouched") and ins["key_index"] != first_old:
        problems.append("inspect key_index %d, Python finds old key %d first" % (ins["key_index"], first_old))
    if expect == "already_new" and (rot["key_index"], ins["key_index"]) != (0, 0):
        problems.append("key_index %d/%d for a value already under the new key" % (rot["key_index"], ins["key_index"]))
    if expect == "rotate" and rot["key_index"] != first_old:
        problems.append("rotate key_index %d, Python finds old key %d first" % (rot["key_index"], first_old))
    if kind == "spans" and rot["tokens"] != len(readings):
        problems.append("rotate counted %d tokens, Python %d" % (rot["tokens"], len(readings)))

    rotated = bytes.fromhex(rot["rotated"])
    if rot["outcome"] != "rotated":
        if rotated:
            problems.append("a value not rotated came with a replacement")
        return {"kind": kind, "expect": expect, "problems": problems}
    if expect != "rotate":
        return {"kind": kind, "expect": expect, "problems": problems}

    if kind == "single":
        if not SINGLE.fullmatch(rotated):
            problems.append("one token became something else")
        ring.read_under_new_only(rotated, readings[0], problems, "the token")
        return {"kind": kind, "expect": expect, "problems": problems}

    before, after = spans(value), spans(rotated)
    if UNCLEAR.search(rotated) or SINGLE.fullmatch(rotated) or len(after) != len(before):
        problems.append("the rotated value's tokens are not where the value's were")
        return {"kind": kind, "expect": expect, "problems": problems}
    if gaps(rotated, after) != gaps(value, before):
        problems.append("bytes outside the tokens changed")
    for n, ((s0, e0), (s1, e1), reading) in enumerate(zip(before, after, readings)):
        where = "token %d" % n
        if reading[0] == 0:
            if value[s0:e0] != rotated[s1:e1]:
                problems.append("%s: under the new key already, but rewritten" % where)
        else:
            ring.read_under_new_only(rotated[s1:e1], reading, problems, where)
    return {"kind": kind, "expect": expect, "problems": problems}


def main():
    with open(sys.argv[1], "rb") as f:
        request = json.load(f)
    ring = Ring(request["keys"])
    json.dump({"results": [judge(ring, case) for case in request["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
