#!/usr/bin/env python3
"""The structure rekey's build holds (ARCHITECTURE.md): run by CMake before
any library compiles, and failing the build on a violation.

- Layers: a file may include the headers of its own folder and of the folders
  below it only: cli -> db -> migrate -> crypto, and every layer -> common.
- Libraries where they belong: libpqxx in db/ only (and the integration
  tests), CLI11 in cli/ only, TBB in migrate/ and cli/, OpenSSL in crypto/'s
  .cpp files only (never a header), toml++ in cli/'s .cpp files only.
- Sizes, outside tests/ and bench/: no file over 350 lines, no function over
  60 (from the line its body opens to its closing brace; clang-formatted code:
  a body opens at the end of its signature, at namespace or class level).

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
    ("toml++/", {"cli"}, True),
]

MAX_FILE_LINES = 350
MAX_FUNCTION_LINES = 60

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


LITERAL_OR_COMMENT = re.compile(
    r'//[^\n]*|/\*.*?\*/|R"([^(]*)\(.*?\)\1"|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', re.S)
ACCESS = re.compile(r"^\s*(?:(?:public|private|protected)\s*:\s*)+")
TYPE_HEAD = re.compile(r"^\s*(?:template\s*<.*>\s*)?(?:class|struct|union)\b", re.S)
NAMESPACE_HEAD = re.compile(r"^\s*(?:inline\s+)?(?:namespace\b|extern\b)")


def blanked(text: str) -> str:
    """`text` with comments, strings and character literals blanked (newlines kept)."""
    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))
    return LITERAL_OR_COMMENT.sub(blank, text)


def scope_kind(statement: str) -> str:
    """What a brace opened at namespace or class level after `statement` opens."""
    head = ACCESS.sub("", statement)
    if NAMESPACE_HEAD.match(head):
        return "namespace"
    if TYPE_HEAD.match(head):
        return "class"
    signature = re.sub(r"operator\s*\S+?\s*\(", "operator(", head)
    paren = signature.find("(")
    if paren >= 0 and "=" not in signature[:paren]:
        return "function"
    return "other"


def long_functions(text: str) -> list:
    """(name, first line, lines) of each function body over MAX_FUNCTION_LINES."""
    found = []
    stack = []  # (kind, line, name) per open brace
    statement = ""
    line = 1
    for char in blanked(text):
        if char == "\n":
            line += 1
        at_outer_level = all(kind in ("namespace", "class") for kind, _, _ in stack)
        if char == "{":
            kind = scope_kind(statement) if at_outer_level else "block"
            name = re.findall(r"([~\w:]+)\s*\(", statement)
            stack.append((kind, line, name[0] if name else "?"))
            statement = ""
        elif char == "}":
            if stack:
                kind, first, name = stack.pop()
                if kind == "function" and line - first + 1 > MAX_FUNCTION_LINES:
                    found.append((name, first, line - first + 1))
            statement = ""
        elif char == ";" and at_outer_level:
            statement = ""
        elif at_outer_level:
            statement += char
    return found


def check_sizes(path: pathlib.Path, root: pathlib.Path) -> list:
    relative = path.relative_to(root).as_posix()
    if relative.split("/")[0] in ("tests", "bench"):
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = len(text.splitlines())
    errors = []
    code = "\n".join("" if l.lstrip().startswith("#") else l for l in text.splitlines())
    if lines > MAX_FILE_LINES:
        errors.append(f"{relative}:1: {lines} lines, over {MAX_FILE_LINES}: split it by role")
    for name, first, length in long_functions(code):
        errors.append(f"{relative}:{first}: {name} is {length} lines, over {MAX_FUNCTION_LINES}: give it named steps")
    return errors


def main() -> int:
    root = pathlib.Path(sys.argv[1]).resolve()
    errors = []
    for folder in list(LAYERS) + ["tests", "bench"]:
        for path in sorted((root / folder).rglob("*")):
            if path.suffix in (".h", ".cpp", ".cc") and path.is_file():
                errors.extend(check_file(path, root))
                errors.extend(check_sizes(path, root))
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        print(f"check_structure: {len(errors)} violation(s) of the structure in ARCHITECTURE.md", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
