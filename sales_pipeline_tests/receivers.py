"""Real receivers on loopback for the tests: an SMTP server (aiosmtpd; STARTTLS, implicit TLS or plain,
with a login, on a `trustme` certificate) and an HTTP server standing in for a chat webhook."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USER, PASSWORD = "pipeline", "s3cret-smtp-password"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class Mailbox:
    """What the server accepted, in order."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, raw))
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.rcpt_tos]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Certificates:
    server: ssl.SSLContext
    client: ssl.SSLContext
    ca_file: Path  # for SSL_CERT_FILE in a process the test starts


def certificates(folder: Path) -> Certificates:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    ca_file = folder / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Certificates(server, client, ca_file)


def _login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def smtp_server(
    mode: str, certs: Certificates | None, mailbox: Mailbox, port: int | None = None, login: bool = True
) -> Iterator[int]:
    """An SMTP server on 127.0.0.1 (`mode`: starttls, ssl or plain) until the block ends; yields its port."""
    port = port or free_port()
    options: dict = {"hostname": "127.0.0.1", "port": port}
    if mode == "ssl":
        options["ssl_context"] = certs.server
    elif mode == "starttls":
        options.update(tls_context=certs.server, require_starttls=True)
    if login:
        # aiosmtpd counts only STARTTLS as TLS for `auth_require_tls`; implicit TLS is TLS from the first byte.
        options.update(authenticator=_login, auth_require_tls=mode == "starttls")
    controller = Controller(mailbox, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


class WebhookReceiver:
    """An HTTP server on loopback recording every POST body (JSON); answers each with the next of `statuses`
    (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict] = []
        self.answered: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.answered.append(status)
                if status < 300:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"busy")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        # A path with a token in it, as Slack's and Teams' URLs have: it must never be seen.
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T000/B000/xoxb-webhook-secret-token"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
