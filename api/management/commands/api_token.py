"""API tokens: ``manage.py api_token create|list|revoke --user NAME``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from api import services
from api.models import ApiToken
from projects.cli import get_project
from renderhub import cli


class Command(BaseCommand):
    help = "Create, list or revoke a user's API tokens. A new key is printed once."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a token and print its key (once).")
        create.add_argument("--user", required=True, help="The user the token acts as.")
        create.add_argument("--name", default="API token", help="What the token is for.")
        create.add_argument("--days", type=int, help="Expire after this many days.")
        create.add_argument("--project", help="Limit the token to this project.")
        listing = sub.add_parser("list", help="The user's tokens (never their keys).")
        listing.add_argument("--user", required=True)
        revoke = sub.add_parser("revoke", help="Revoke a token by its prefix (rh_…) or id.")
        revoke.add_argument("--user", required=True)
        revoke.add_argument("token", help="Prefix as listed, or the token id.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli.resolve_user(options["user"])
        assert user is not None
        getattr(self, f"handle_{options['action']}")(user, options)

    def handle_create(self, user: Any, options: dict[str, Any]) -> None:
        project = get_project(options["project"], user) if options["project"] else None
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        expires = timezone.now() + timedelta(days=days) if days else None
        try:
            token, key = services.create_token(
                user, options["name"], expires_at=expires, project=project
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stderr.write(f"Token {token.prefix}… for {user}; the key is shown only now:")
        self.stdout.write(key)

    def handle_list(self, user: Any, options: dict[str, Any]) -> None:
        tokens = ApiToken.objects.filter(user=user).select_related("project")
        cli.print_table(
            self.stdout,
            ["id", "prefix", "name", "project", "state", "created", "last used", "expires"],
            (
                [
                    t.pk,
                    t.prefix,
                    t.name,
                    t.project or "-",
                    "active" if t.is_active else ("revoked" if t.revoked_at else "expired"),
                    cli.format_time(t.created_at),
                    cli.format_time(t.last_used_at),
                    cli.format_time(t.expires_at),
                ]
                for t in tokens
            ),
        )

    def handle_revoke(self, user: Any, options: dict[str, Any]) -> None:
        value = options["token"].rstrip("…")
        tokens = ApiToken.objects.filter(user=user)
        matches = list(
            tokens.filter(pk=int(value)) if value.isdigit() else tokens.filter(prefix=value)
        )
        if len(matches) != 1:
            raise CommandError(
                f"{user} has no token {value!r}."
                if not matches
                else f"{value!r} matches {len(matches)} tokens; give the id."
            )
        if services.revoke_token(matches[0]):
            self.stdout.write(f"Revoked {matches[0].prefix}….")
        else:
            self.stdout.write(f"{matches[0].prefix}… was already revoked.")
