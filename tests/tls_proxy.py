"""A TLS-terminating proxy in front of the Temporal dev server, with a certificate authority made
for the test: what a province's Temporal cluster looks like to Accord (mTLS, an API key).

- `make_pki(folder)` writes a CA, a server certificate for `temporal.accord.test` and
  127.0.0.1, a client certificate and its key, and a second, unrelated CA (the "wrong CA").
- `TlsProxy` accepts TLS on loopback, offers ALPN `h2` (gRPC), requires a client certificate
  signed by the CA, and forwards the bytes to the dev server's plain port. With `api_key` it
  also reads the client's HTTP/2 HEADERS frames (HPACK-decoded) and closes the connection on
  any request whose `authorization` header is not `Bearer <api_key>`: the dev server itself
  ignores API keys, so the proxy stands in for the cluster's authorizer. It counts the
  requests it let through with the right key (`authorized`) and those it refused (`refused`).

Tests only: nothing in Accord imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType
from typing import Self

import hpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAME = "temporal.accord.test"
"""The name in the server certificate (and 127.0.0.1): what `tls_server_name` must say when
the address is another name."""

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _CONTINUATION = 0x1, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    """A CA that signed nothing here: a client trusting it must refuse the server."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = ca
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVER_NAME), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca = _ca("Accord test CA")
    other = _ca("Some other CA")
    server = _leaf(SERVER_NAME, ca, server=True)
    client = _leaf("accord-worker", ca, server=False)
    pki = Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
    )
    pem = serialization.Encoding.PEM
    pki.ca.write_bytes(ca[0].public_bytes(pem))
    pki.other_ca.write_bytes(other[0].public_bytes(pem))
    pki.server_cert.write_bytes(server[0].public_bytes(pem))
    _write_key(pki.server_key, server[1])
    pki.client_cert.write_bytes(client[0].public_bytes(pem))
    _write_key(pki.client_key, client[1])
    return pki


class TlsProxy:
    """TLS (client certificate required, ALPN h2) on 127.0.0.1:`port` → `upstream` in clear."""

    def __init__(self, pki: Pki, port: int, upstream: str, *, api_key: str | None = None) -> None:
        self.port = port
        self._upstream_host, upstream_port = upstream.rsplit(":", 1)
        self._upstream_port = int(upstream_port)
        self._api_key = api_key
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=pki.ca)
        self._context.load_cert_chain(pki.server_cert, pki.server_key)
        self._context.verify_mode = ssl.CERT_REQUIRED
        self._context.set_alpn_protocols(["h2"])
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.authorized = 0
        self.refused = 0
        self.handshakes = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, ssl=self._context
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for connection in list(self._connections):
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.handshakes += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            first = b""
            decoder = hpack.Decoder()
            if self._api_key is not None:
                # Like a cluster's authorizer: a request without the key is answered
                # UNAUTHENTICATED and never reaches the server.
                first, stream_id, headers = await self._first_request(reader, decoder)
                if not self._allowed(headers):
                    await _unauthenticated(writer, stream_id)
                    return
            up_reader, up_writer = await asyncio.open_connection(
                self._upstream_host, self._upstream_port
            )
            up_writer.write(first)
            client_to_server = (
                self._check_and_forward(reader, up_writer, decoder)
                if self._api_key is not None
                else _pipe(reader, up_writer)
            )
            await asyncio.gather(client_to_server, _pipe(up_reader, writer))
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, _Refused):
            pass
        except asyncio.CancelledError:
            pass  # the proxy is closing
        finally:
            for end in (writer, up_writer):
                if end is not None:
                    end.close()
            self._connections.discard(task)

    def _allowed(self, headers: dict[str, str]) -> bool:
        if headers.get("authorization") == f"Bearer {self._api_key}":
            self.authorized += 1
            return True
        self.refused += 1
        return False

    async def _first_request(
        self, reader: asyncio.StreamReader, decoder: hpack.Decoder
    ) -> tuple[bytes, int, dict[str, str]]:
        """The client's bytes up to its first complete header block, that block's stream
        and its headers."""
        seen = await reader.readexactly(len(_PREFACE))
        if seen != _PREFACE:
            raise _Refused
        block = b""
        while True:
            head, payload = await _frame(reader)
            seen += head + payload
            if head[3] in (_HEADERS, _CONTINUATION):
                block += _fragment(head, payload)
                if head[4] & _END_HEADERS:
                    stream_id = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                    return seen, stream_id, _decode(decoder, block)

    async def _check_and_forward(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, decoder: hpack.Decoder
    ) -> None:
        """Forward the client's HTTP/2 frames, checking each later request's `authorization`
        too (a refusal there drops the connection)."""
        block = b""
        while True:
            head, payload = await _frame(reader)
            if head[3] in (_HEADERS, _CONTINUATION):
                block += _fragment(head, payload)
                if head[4] & _END_HEADERS:
                    headers, block = _decode(decoder, block), b""
                    if not self._allowed(headers):
                        raise _Refused
            writer.write(head + payload)
            await writer.drain()


async def _frame(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readexactly(9)
    return head, await reader.readexactly(int.from_bytes(head[:3], "big"))


def _fragment(head: bytes, payload: bytes) -> bytes:
    if head[3] != _HEADERS:
        return payload
    flags, pad = head[4], 0
    if flags & _PADDED:
        pad, payload = payload[0], payload[1:]
    if flags & _PRIORITY:
        payload = payload[5:]
    return payload[: len(payload) - pad]


def _decode(decoder: hpack.Decoder, block: bytes) -> dict[str, str]:
    return {_text(name): _text(value) for name, value in decoder.decode(block)}


async def _unauthenticated(writer: asyncio.StreamWriter, stream_id: int) -> None:
    """Answer the request as a gRPC server refusing its credentials: our SETTINGS, a
    trailers-only response with grpc-status 16 (UNAUTHENTICATED), then GOAWAY."""
    block = hpack.Encoder().encode(
        [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "16"),
            ("grpc-message", "Request unauthorized"),
        ]
    )
    end_stream = 0x1
    frames = (
        _frame_bytes(0x4, 0, 0, b"")  # SETTINGS (defaults)
        + _frame_bytes(0x4, 0x1, 0, b"")  # SETTINGS ACK of the client's
        + _frame_bytes(_HEADERS, _END_HEADERS | end_stream, stream_id, block)
        + _frame_bytes(0x7, 0, 0, stream_id.to_bytes(4, "big") + (0).to_bytes(4, "big"))
    )
    writer.write(frames)
    await writer.drain()
    await asyncio.sleep(0.2)  # let the client read it before the connection closes


def _frame_bytes(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([kind, flags])
        + stream_id.to_bytes(4, "big")
        + payload
    )


class _Refused(Exception):
    """A request without the right API key: the proxy drops the connection."""


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
