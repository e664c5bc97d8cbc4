"""Adds (or replaces) a moderator in the console's moderator file.

    python -m origin.console_passwords FILE NAME     # asks for the password twice
    printf '%s\\n' "$PASSWORD" | python -m origin.console_passwords FILE NAME --stdin

The file is created with mode 0600; point `REELSTREAM_ORIGIN_CONSOLE_MODERATORS_FILE` at it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from origin.console_auth import NAME, ModeratorFileError, hash_password, parse_moderators

MIN_PASSWORD_CHARS = 12


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m origin.console_passwords", description=__doc__.split("\n")[0]
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("name")
    parser.add_argument("--stdin", action="store_true", help="read the password from stdin")
    args = parser.parse_args(list(argv))
    if not NAME.fullmatch(args.name):
        parser.error("a moderator name is 1-64 letters, digits, '_', '.' or '-'")
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            parser.error("the passwords differ")
    if len(password) < MIN_PASSWORD_CHARS:
        parser.error(f"a password has at least {MIN_PASSWORD_CHARS} characters")
    path: Path = args.file
    text = path.read_text() if path.exists() else ""
    try:
        parse_moderators(text)
    except ModeratorFileError as exc:
        parser.error(f"{path}: {exc}")
    kept = [line for line in text.splitlines() if line.split(":", 1)[0] != args.name]
    kept.append(hash_password(password).entry(args.name))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("\n".join(kept) + "\n")
    print(f"moderator {args.name} written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
