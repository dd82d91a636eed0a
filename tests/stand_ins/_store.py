# Shared by the stand-ins for secret stores' command-line tools (aws, az,
# gcloud, vault, op): each parses its real tool's arguments for one read of a
# secret (argparse: anything else is a usage error, exit 2) and prints the
# secret the JSON file in $REKEY_FAKE_STORE holds under "TOOL ID", as the
# real tool would, with its newline (CRLF for az, as a Windows-edited value);
# `aws ssm put-parameter` stores one (the emergency script's
# --store-new-key-command).
import json
import os
import sys


def serve(tool, secret_id, newline="\n"):
    path = os.environ.get("REKEY_FAKE_STORE")
    if not path:
        sys.exit(f"{tool} stand-in: REKEY_FAKE_STORE is not set")
    with open(path) as f:
        store = json.load(f)
    key = f"{tool} {secret_id}"
    if key not in store:
        print(f"{tool} stand-in: no secret {secret_id}", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write(store[key] + newline)


def put(tool, secret_id, value, overwrite):
    """Stores `value` under "TOOL ID"; counts the writes under "writes"."""
    path = os.environ["REKEY_FAKE_STORE"]
    with open(path) as f:
        store = json.load(f)
    key = f"{tool} {secret_id}"
    if key in store and not overwrite:
        print(f"{tool} stand-in: ParameterAlreadyExists: {secret_id}", file=sys.stderr)
        sys.exit(254)
    store[key] = value
    store["writes"] = store.get("writes", 0) + 1
    with open(path, "w") as f:
        json.dump(store, f)
