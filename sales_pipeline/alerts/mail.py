"""Email: an outbox row as a MIME message (plain text + HTML, inline chart, attachments), sent over SMTP
(STARTTLS, implicit TLS or plain, optional login, a timeout) or written as an .eml file.

Subjects and addresses are single lines: a value with a line break (a customer named
``x\\r\\nBcc: a@b``) is folded into spaces before it reaches a header, so it stays a name. Non-ASCII
subjects are encoded (RFC 2047) by the standard library's `email` package.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate
from pathlib import Path

from sales_pipeline.alerts.outbox import Outgoing


class DeliveryError(Exception):
    """A message not accepted. `permanent`: the receiver refused it for good (do not retry);
    `retry_after`: seconds the receiver asked to wait. The message never carries a secret."""

    def __init__(self, message: str, permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class SmtpSettings:
    """How to reach the mail server (settings SMTP_*); `host` None writes .eml files instead."""

    host: str | None
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    ssl: bool = False
    timeout_s: float = 30.0


def one_line(text: str) -> str:
    """Whitespace (line breaks included) folded into single spaces: safe in a header."""
    return " ".join(text.split())


def compose(outgoing: Outgoing, sender: str) -> EmailMessage:
    """The email of an outbox row: text, HTML with its inline images, then attachments."""
    message = EmailMessage()
    message["Subject"] = one_line(outgoing.subject)
    message["From"] = sender
    message["To"] = one_line(outgoing.recipient)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = outgoing.message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: out-of-office replies stay away
    message.set_content(outgoing.body_text)
    inline = [a for a in outgoing.attachments if a.content_id]
    if outgoing.body_html is not None:
        message.add_alternative(outgoing.body_html, subtype="html")
        html_part = message.get_payload()[-1]
        for attachment in inline:
            maintype, subtype = attachment.content_type.split("/", 1)
            html_part.add_related(
                _bytes(attachment), maintype, subtype, cid=f"<{attachment.content_id}>", filename=attachment.filename
            )
    for attachment in outgoing.attachments:
        if attachment.content_id and outgoing.body_html is not None:
            continue
        maintype, subtype = attachment.content_type.split("/", 1)
        message.add_attachment(_bytes(attachment), maintype, subtype, filename=attachment.filename)
    return message


def _bytes(attachment) -> bytes:
    if attachment.data is not None:
        return attachment.data
    try:
        return Path(attachment.path).read_bytes()
    except OSError as error:
        raise DeliveryError(
            f"attachment {attachment.filename}: cannot read {attachment.path} ({error.strerror})"
        ) from None


class EmlWriter:
    """No mail server configured: each message is an .eml file in `folder` (opens in any mail client)."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    def __enter__(self) -> EmlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def send(self, outgoing: Outgoing) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        recipient = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in outgoing.recipient)
        path = self.folder / f"{outgoing.notification_id:06d}-{outgoing.kind}-{recipient}.eml"
        payload = compose(outgoing, self.sender).as_bytes(policy=SMTP_POLICY)
        with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".", suffix=".tmp", delete=False) as out:
            out.write(payload)
        os.chmod(out.name, 0o644)
        Path(out.name).replace(path)  # atomic: a reader never sees half a message
        return str(path)


class SmtpSender:
    """Sends outbox rows over one SMTP connection, opened on first use and reopened after an error.

    After a connection-level failure the server is taken as down for the rest of this run: the other
    messages fail at once with the same reason (and are tried again on a later run).
    """

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.context = context
        self._smtp: smtplib.SMTP | None = None
        self._down: str | None = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def send(self, outgoing: Outgoing) -> str:
        """Hand one message to the server; returns the server's reply to it (its queue id, often)."""
        if self._down:
            raise DeliveryError(self._down)
        payload = compose(outgoing, self.settings.sender).as_bytes(policy=SMTP_POLICY)
        smtp = self._connection()
        try:
            # A refused sender is the configuration's fault (ALERT_EMAIL_FROM): tried again once it is fixed;
            # a refused recipient or message is refused for good.
            _expect(smtp.mail(self.settings.sender), f"the sender {self.settings.sender}", permanent=False)
            _expect(smtp.rcpt(outgoing.recipient), f"the recipient {outgoing.recipient}")
            code, reply = smtp.data(payload)
            _expect((code, reply), "the message")
        except DeliveryError:
            self._reset()
            raise
        except (smtplib.SMTPException, OSError) as error:
            self._close()
            raise DeliveryError(f"SMTP server {self._where()}: {type(error).__name__}: {error}") from None
        return reply.decode(errors="replace")

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        s = self.settings
        context = self.context or ssl.create_default_context()
        try:
            if s.ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
                smtp.ehlo()
                if s.starttls:
                    if not smtp.has_extn("starttls"):
                        smtp.close()
                        raise DeliveryError(
                            f"SMTP server {self._where()} does not offer STARTTLS: set SMTP_SSL=true for implicit"
                            " TLS, or SMTP_STARTTLS=false for a plain local relay"
                        )
                    smtp.starttls(context=context)
                    smtp.ehlo()
            if s.user:
                smtp.login(s.user, s.password or "")
        except DeliveryError as error:
            self._down = str(error)
            raise
        except smtplib.SMTPAuthenticationError as error:
            self._down = f"SMTP server {self._where()} refused the login of SMTP_USER: {_text(error.smtp_error)}"
            raise DeliveryError(self._down) from None
        except (smtplib.SMTPException, OSError) as error:
            self._down = f"SMTP server {self._where()} unreachable: {type(error).__name__}: {error}"
            raise DeliveryError(self._down) from None
        self._smtp = smtp
        return smtp

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _reset(self) -> None:
        """After a refusal the session is still good: RSET, or start again if even that fails."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._close()

    def _close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _expect(reply: tuple[int, bytes], what: str, permanent: bool = True) -> None:
    """A 2xx reply, or a DeliveryError: 5xx is a refusal for good, 4xx (busy, greylisted) is tried again."""
    code, text = reply
    if not 200 <= code < 300:
        raise DeliveryError(f"SMTP server refused {what}: {code} {_text(text)}", permanent=permanent and code >= 500)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
