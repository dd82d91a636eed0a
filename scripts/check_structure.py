#!/usr/bin/env python3
"""The structure rekey's build holds (ARCHITECTURE.md): run by CMake before
any library compiles, and failing the build on a violation.

- Layers: a file may include the headers of its own folder and of the folders
  below it only: cli -> db -> migrate -> crypto, and every layer -> common.
- Libraries where they belong: libpqxx in db/ only (and the integration
  tests), CLI11 in cli/ only, TBB in migrate/ and cli/, OpenSSL in crypto/'s
  .cpp files only (never a header).

Usage: check_structure.py SOURCE_DIR. Prints each violation as
FILE:LINE: message and exits 1 when there is one.
"""
import pathlib
import re
import sys

# What each folder's files may include, besides their own folder.
LAYERS = {
    "common": set(),
    "crypto": {"common"},
    "migrate": {"crypto", "common"},
    "db": {"migrate", "common"},
    "cli": {"db", "migrate", "crypto", "common"},
}

# External headers, by the prefix of the include, and the folders that may use
# them. A rule holds for a folder's .cpp and .h files unless `cpp_only`.
LIBRARIES = [
    ("pqxx/", {"db", "tests/integration"}, False),
    ("CLI/", {"cli"}, False),
    ("tbb/", {"migrate", "cli"}, False),
    ("oneapi/tbb", {"migrate", "cli"}, False),
    ("openssl/", {"crypto"}, True),
]

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def folder_of(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = path.relative_to(root).parts
    if parts[0] == "tests" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def check_file(path: pathlib.Path, root: pathlib.Path) -> list:
    folder = folder_of(path, root)
    errors = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        match = INCLUDE.match(line)
        if not match:
            continue
        quote, header = match.groups()
        where = f"{path.relative_to(root)}:{number}"
        if quote == '"' and folder in LAYERS:
            target = header.split("/")[0]
            if target in LAYERS and target != folder and target not in LAYERS[folder]:
                errors.append(f"{where}: {folder}/ may not include {header} ({folder} -> {target} is not an edge)")
        top = folder.split("/")[0]
        for prefix, allowed, cpp_only in LIBRARIES:
            if not header.startswith(prefix) or top == "bench":
                continue
            if top == "tests":
                permitted = prefix != "pqxx/" or folder != "tests/unit"
            else:
                permitted = folder in allowed and not (cpp_only and path.suffix == ".h")
            if not permitted:
                errors.append(f"{where}: <{header}> belongs in {', '.join(sorted(allowed))}"
                              f"{' (.cpp files only)' if cpp_only else ''}, not {folder}/")
    return errors


def main() -> int:
    root = pathlib.Path(sys.argv[1]).resolve()
    errors = []
    for folder in list(LAYERS) + ["tests", "bench"]:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".h", ".cpp", ".cc") and path.is_file():
                errors.extend(check_file(path, root))
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"check_structure: {len(errors)} violation(s) of the structure in ARCHITECTURE.md", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
