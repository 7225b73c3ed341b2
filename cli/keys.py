"""`moetune keys`: create, list and revoke API keys. A key is printed once; only its hash is stored.

    moetune keys create --tenant acme [--name laptop]
    moetune keys list [--tenant acme]
    moetune keys revoke key-...

The database comes from the settings (`MOETUNE_DATABASE_URL`). The storage modules load on use,
so building the `moetune` parser does not import the web stack.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api.settings import Settings


def create_key(tenant_name: str, settings: Settings, name: str | None = None) -> str:
    """Create a key for the tenant (created if new); returns the plaintext key."""
    from db.migrate import upgrade_database
    from db.session import make_engine, make_session_factory
    from db.tenants import create_api_key, get_or_create_tenant

    tenant_name = tenant_name.strip()
    if not tenant_name:
        raise ValueError("the tenant name must not be empty")
    if settings.auto_migrate:
        upgrade_database(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            tenant = get_or_create_tenant(session, tenant_name)
            _, key = create_api_key(session, tenant.id, name)
            return key
    finally:
        engine.dispose()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="keys_command", required=True)
    create = commands.add_parser("create", help="create a key for a tenant and print it once")
    create.add_argument("--tenant", required=True, help="tenant name (created if new)")
    create.add_argument("--name", help="a label for the key")
    listing = commands.add_parser("list", help="list keys (prefixes only, never the keys)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the key's id (key-...), as shown by `list`")


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    from api.settings import Settings
    from db.session import make_engine, make_session_factory
    from db.tenants import list_api_keys, revoke_api_key

    settings = settings or Settings()
    if args.keys_command == "create":
        try:
            key = create_key(args.tenant, settings, args.name)
        except ValueError as err:
            print(f"error: --tenant: {err}", file=sys.stderr)
            return 2
        print(key)
        print("Store this key now: it cannot be shown again.", file=sys.stderr)
        return 0

    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            if args.keys_command == "list":
                for row, tenant in list_api_keys(session, args.tenant):
                    state = "revoked" if row.revoked else "active"
                    print(
                        f"{row.id}\t{tenant.name}\t{row.prefix}...\t{row.created_at:%Y-%m-%d %H:%M}\t{state}"
                    )
                return 0
            if revoke_api_key(session, args.key_id) is None:
                print(f"error: no key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
            return 0
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """`python -m cli.keys ...`: the same as `moetune keys ...`."""
    parser = argparse.ArgumentParser(prog="moetune keys", description="Manage API keys")
    add_arguments(parser)
    return run(parser.parse_args(argv), settings)


if __name__ == "__main__":
    raise SystemExit(main())
