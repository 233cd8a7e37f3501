"""Outgoing email (invitations) through the SMTP server of SMTP_URL, or into the log when there is none."""
from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import current_app

log = logging.getLogger(__name__)
TIMEOUT = 10  # seconds: a page waits for this at most when the mail server hangs


def send(to: str, subject: str, body: str) -> bool:
    """Send a plain-text email. Returns False when it was not sent (no server configured, or it failed);
    the message is then in the log, so nothing is lost."""
    url = current_app.config.get("SMTP_URL")
    if not url:
        log.info("No mail server (SMTP_URL) is configured; this email to %s was not sent:\n"
                 "Subject: %s\n\n%s", to, subject, body)
        return False
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    parts = urlsplit(url)
    try:
        if parts.scheme == "smtps":
            server = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=TIMEOUT,
                                      context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(parts.hostname, parts.port or 587, timeout=TIMEOUT)
        with server:
            if parts.scheme != "smtps" and server.has_extn("starttls"):
                server.starttls(context=ssl.create_default_context())
            if parts.username:
                server.login(unquote(parts.username), unquote(parts.password or ""))
            server.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.error("Could not send the email to %s through %s:%s (%s); it said:\nSubject: %s\n\n%s",
                  to, parts.hostname, parts.port, exc, subject, body)
        return False
    return True
