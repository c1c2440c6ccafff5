"""What the accounts service writes to people: each email's words, in one place. Only the
links carry secrets; nothing else here ever does."""

import html
from dataclasses import dataclass

from ..mail import Email


@dataclass(frozen=True)
class Message:
    subject: str
    lines: list[str]
    link: str | None = None

    def to(self, address: str) -> Email:
        """The email to `address`: the same words as text and as HTML."""
        text = "\n\n".join([*self.lines, *([self.link] if self.link else [])]) + "\n"
        body = "".join(f"<p>{html.escape(line)}</p>" for line in self.lines)
        if self.link:
            href = html.escape(self.link, quote=True)
            body += f'<p><a href="{href}">{href}</a></p>'
        return Email(
            to=address, subject=self.subject, text=text, html=f"<html><body>{body}</body></html>"
        )


def verification(email: str, hours: int, link: str) -> Message:
    return Message(
        "Verify your email address",
        [f"Follow this link within {hours} hours to verify {email}:"],
        link,
    )


def taken(forgot_link: str) -> Message:
    return Message(
        "Someone tried to sign up with your email address",
        [
            "Someone, perhaps you, tried to create an account with this address, which "
            "already has one. If it was you, sign in, or reset your password."
        ],
        forgot_link,
    )


def reset(minutes: int, link: str) -> Message:
    return Message(
        "Reset your password",
        [
            f"Follow this link within {minutes} minutes to choose a new password. If you did "
            "not ask for this, ignore this email: your password stays as it is."
        ],
        link,
    )


def password_changed(forgot_link: str) -> Message:
    return Message(
        "Your password was changed",
        [
            "The password of your account was just changed, and every session signed out. "
            "If this was not you, reset your password now."
        ],
        forgot_link,
    )


def email_change_requested(new: str) -> Message:
    return Message(
        "Your email address is being changed",
        [
            f"Someone signed in to your account asked to change its email address to {new}. "
            "It changes once that address is verified. If this was not you, change your "
            "password now."
        ],
    )


def invitation(name: str, hours: int, link: str) -> Message:
    return Message(
        "You are invited to user-service",
        [
            f"An operator created an account for you ({name}) with this address. Follow this "
            f"link within {hours} hours to choose your password; then sign in with this "
            "address and that password."
        ],
        link,
    )


def email_changed_by_operator(new: str) -> Message:
    return Message(
        "Your email address was changed",
        [
            f"An operator changed the email address of your account to {new}. If you did not "
            "ask for this, contact them."
        ],
    )


def second_factor_changed(what: str, forgot_link: str) -> Message:
    return Message(
        "Your sign-in changed",
        [
            f"{what} If this was not you, reset your password now, and ask an operator to "
            "clear your second factors."
        ],
        forgot_link,
    )


def identity_linked(label: str, forgot_link: str) -> Message:
    return Message(
        f"{label} now signs you in",
        [
            f"Your account is now linked to your {label} account: signing in with {label} "
            "opens it. If this was not you, reset your password now, and remove the link "
            "from your account page."
        ],
        forgot_link,
    )
