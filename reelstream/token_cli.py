"""`reelstream token`: mint a signed user token (load tests, manual calls).

    reelstream token --user 42 [--ttl 3600] [--kid k1] [--keys k1:secret,...]
    reelstream token --any-user ...      a service token for any user id (load generators)
    reelstream token --user 42 --age-verified   ... with the age-verified claim

Keys default to REELSTREAM_EDGE_USER_TOKEN_KEYS (the edge's setting); the first key signs
unless --kid names another.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

from reelstream.user_tokens import ANY_USER, mint, parse_keys


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="reelstream token", description=__doc__.split("\n")[0])
    subject = parser.add_mutually_exclusive_group(required=True)
    subject.add_argument("--user", type=int, help="the user id the token binds")
    subject.add_argument("--any-user", action="store_true", help="a service token")
    parser.add_argument(
        "--age-verified", action="store_true", help="add the age-verified claim (av)"
    )
    parser.add_argument("--ttl", type=int, default=3600, help="seconds of validity")
    parser.add_argument("--kid", default="", help="key id to sign with (default: the first)")
    parser.add_argument(
        "--keys",
        default=os.environ.get("REELSTREAM_EDGE_USER_TOKEN_KEYS", ""),
        help="kid:secret entries, comma-separated",
    )
    args = parser.parse_args(list(argv))
    entries = [entry for entry in args.keys.split(",") if entry]
    if not entries:
        parser.error("no keys: pass --keys or set REELSTREAM_EDGE_USER_TOKEN_KEYS")
    try:
        keys = parse_keys(entries)
        key_id = args.kid or next(iter(keys))
        who: int | str = ANY_USER if args.any_user else args.user
        expires_s = int(time.time()) + args.ttl
        print(mint(keys, key_id, who, expires_s, age_verified=args.age_verified))
    except ValueError as exc:
        parser.error(str(exc))
    return 0
