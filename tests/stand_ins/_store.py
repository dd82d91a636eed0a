# Shared by the stand-ins for secret stores' command-line tools (aws, az,
# gcloud, vault, op): each parses its real tool's arguments for one read of a
# secret (argparse: anything else is a usage error, exit 2) and prints the
# secret the JSON file in $REKEY_FAKE_STORE holds under "TOOL ID", as the
# real tool would, with its newline (CRLF for az, as a Windows-edited value).
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
