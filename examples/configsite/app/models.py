from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from app import login


class User(UserMixin):
    def __init__(self, id, username, email):
        self.id = id
        self.username = username
        self.email = email  # what App Inbox asks eSputnik for (user.email, .phone, .external_customer_id)
        self.password_hash = None

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        return self.password_hash is not None and check_password_hash(self.password_hash, password)

    def __repr__(self):
        return f"<User {self.username}>"


def _user(id, username, email, password):
    user = User(id, username, email)
    user.set_password(password)
    return user


# The site's database, in memory.
USERS = {u.id: u for u in [_user("1", "susan", "susan@example.com", "cat"),
                           _user("2", "john", "john@example.com", "dog")]}


def find_user(username):
    return next((u for u in USERS.values() if u.username == username), None)


@login.user_loader
def load_user(id):
    return USERS.get(id)
