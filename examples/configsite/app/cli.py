import click
from flask.cli import AppGroup

from app.models import USERS

users = AppGroup("users", help="The site's users.")


@users.command("list")
def list_users():
    """List the users."""
    for user in USERS.values():
        click.echo(f"{user.username} <{user.email}>")
