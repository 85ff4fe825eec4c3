"""``python -m azaion_pipeline.devserver add-user|reset-hardware|serve``.

Passwords are read from the terminal (or stdin), never from the command line, so they stay out
of shell history and process listings.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from azaion_pipeline.devserver.users import ROLES, UserStore, add_user


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m azaion_pipeline.devserver", description=__doc__
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-user", help="create or replace a user in the users file")
    add.add_argument("--users-file", type=Path, required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--role", action="append", choices=ROLES, required=True)
    reset = commands.add_parser("reset-hardware", help="unbind a user from its machine")
    reset.add_argument("--storage-dir", type=Path, required=True)
    reset.add_argument("--users-file", type=Path, required=True)
    reset.add_argument("--email", required=True)
    serve = commands.add_parser("serve", help="serve the API (settings from AZAION_DEVSERVER_*)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    if args.command == "add-user":
        password = (
            getpass.getpass("password: ")
            if sys.stdin.isatty()
            else sys.stdin.readline().rstrip("\n")
        )
        add_user(args.users_file, args.email, password, args.role)
        print(f"user {args.email} saved to {args.users_file} with roles {', '.join(args.role)}")
    elif args.command == "reset-hardware":
        store = UserStore(args.users_file, args.storage_dir / ".hardware_bindings.json")
        print("reset" if store.reset_hardware(args.email) else "no binding to reset")
    else:
        import uvicorn

        from azaion_pipeline.devserver.app import DevServerSettings, create_app

        uvicorn.run(create_app(DevServerSettings()), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
