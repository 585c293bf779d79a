"""Bearer auth over a real grpc.aio server and channel on 127.0.0.1, tokens from the real IdP."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import grpc.aio
import httpx
import jwt
import pytest

from pdp.api import METADATA_LIMIT
from pdp.auth import (
    AsyncTokenSource,
    RemoteKeys,
    Unauthenticated,
    Validator,
    ValidatorConfig,
)
from pdp.auth.grpc import BearerAuthInterceptor, bearer_interceptors, current_principal
from tests.auth.support import PDP_AUDIENCE, REJECTED_TOKENS, Idp

SERVICE = "test.Echo"
PUBLIC_METHOD = f"/{SERVICE}/Ping"


def validator_config(idp: Idp, jwks_uri: str | None = None) -> ValidatorConfig:
    return ValidatorConfig(
        issuer=idp.issuer,
        audience=(PDP_AUDIENCE,),
        jwks_uri=jwks_uri or idp.jwks_uri,
        required_scopes=("pdp.decide",),
    )


class RevokingValidator(Validator):
    """The server side of a revocation: refuses tokens whose `jti` was revoked."""

    revoked: set[str]

    async def validate_async(self, token: str) -> Any:
        if jwt.decode(token, options={"verify_signature": False}).get("jti") in self.revoked:
            raise Unauthenticated("token was revoked")
        return await super().validate_async(token)


@dataclass
class EchoServer:
    port: int
    calls: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def echo_handlers(server: EchoServer) -> grpc.GenericRpcHandler:
    """A tiny service with raw-bytes messages: each method answers with the caller's subject."""

    def subject() -> bytes:
        principal = current_principal()
        return principal.subject.encode() if principal else b"anonymous"

    async def who(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        server.calls.append("Who")
        return subject()

    async def count(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for n in range(int(request)):
            yield subject() + b":" + str(n).encode()

    async def write(request: bytes, context: grpc.aio.ServicerContext) -> None:
        await context.write(subject())
        await context.write(b"done")

    async def ping(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return b"pong " + subject()

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Who": grpc.unary_unary_rpc_method_handler(who),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Write": grpc.unary_stream_rpc_method_handler(write),
            "Ping": grpc.unary_unary_rpc_method_handler(ping),
        },
    )


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    """Start an echo server guarded by a given validator; everything stops after the test."""
    servers: list[grpc.aio.Server] = []
    validators: list[Validator] = []

    async def start(validator: Validator) -> EchoServer:
        server = grpc.aio.server(
            interceptors=[BearerAuthInterceptor(validator, public_methods=[PUBLIC_METHOD])],
            options=METADATA_LIMIT,  # as the PDP's server
        )
        echo = EchoServer(server.add_insecure_port("127.0.0.1:0"))
        server.add_generic_rpc_handlers([echo_handlers(echo)])
        await server.start()
        servers.append(server)
        validators.append(validator)
        return echo

    yield start
    for server in servers:
        await server.stop(None)
    for validator in validators:
        validator.close()


@pytest.fixture
async def tokens(idp: Idp) -> AsyncIterator[AsyncTokenSource]:
    async with AsyncTokenSource(idp.secret_client(scope="pdp.decide")) as source:
        yield source


def authed_channel(target: str, tokens: AsyncTokenSource) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, interceptors=bearer_interceptors(tokens))


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def test_end_to_end_unary_and_streams(idp: Idp, serve: Any, tokens: AsyncTokenSource) -> None:
    echo = await serve(Validator(validator_config(idp)))
    async with authed_channel(echo.target, tokens) as channel:
        assert await channel.unary_unary(f"/{SERVICE}/Who")(b"") == b"sidecar-basic"
        streamed = [m async for m in channel.unary_stream(f"/{SERVICE}/Count")(b"3")]
        assert streamed == [b"sidecar-basic:0", b"sidecar-basic:1", b"sidecar-basic:2"]
        written = [m async for m in channel.unary_stream(f"/{SERVICE}/Write")(b"")]
        assert written == [b"sidecar-basic", b"done"]


async def test_public_method_needs_no_token(idp: Idp, serve: Any) -> None:
    echo = await serve(Validator(validator_config(idp)))
    async with grpc.aio.insecure_channel(echo.target) as channel:
        assert await channel.unary_unary(PUBLIC_METHOD)(b"") == b"pong anonymous"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Who")(b"")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "missing authorization" in (caught.value.details() or "")


@pytest.mark.parametrize("case", list(REJECTED_TOKENS))
async def test_bad_tokens_are_unauthenticated(idp: Idp, serve: Any, case: str) -> None:
    echo = await serve(Validator(validator_config(idp)))
    make, reason = REJECTED_TOKENS[case]
    token = make(idp)
    async with grpc.aio.insecure_channel(echo.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Who")(b"", metadata=bearer(token))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    details = caught.value.details() or ""
    assert reason in details
    assert not [part for part in token.split(".") if len(part) > 16 and part in details]
    assert echo.calls == []


@pytest.mark.parametrize("size", [6_000, 9_000, 12_000, 16_000])
async def test_large_valid_tokens_are_accepted_every_time(idp: Idp, serve: Any, size: int) -> None:
    # Between 8 and 16 KiB gRPC's default metadata limits refused calls at random.
    echo = await serve(Validator(validator_config(idp)))
    token = idp.forge(pad="x")
    token = idp.forge(pad="x" * ((size - len(token)) * 3 // 4))  # base64 adds a third
    assert size - 10 <= len(token) <= 16 * 1024
    async with grpc.aio.insecure_channel(echo.target) as channel:
        for _ in range(20):
            answer = await channel.unary_unary(f"/{SERVICE}/Who")(b"", metadata=bearer(token))
            assert answer == b"forged-client"


@pytest.mark.parametrize("size", [17_000, 100_000, 900_000])
async def test_oversized_tokens_are_unauthenticated(idp: Idp, serve: Any, size: int) -> None:
    echo = await serve(Validator(validator_config(idp)))
    async with grpc.aio.insecure_channel(echo.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Who")(b"", metadata=bearer("x" * size))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "too large" in (caught.value.details() or "")


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((("authorization", "Basic dXNlcjpwYXNz"),), "not a Bearer token"),
        ((("authorization", "Bearer "),), "not a Bearer token"),
        ((("authorization", "Bearer a"), ("authorization", "Bearer b")), "exactly one"),
    ],
)
async def test_malformed_authorization_metadata(
    idp: Idp, serve: Any, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    echo = await serve(Validator(validator_config(idp)))
    async with grpc.aio.insecure_channel(echo.target) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Who")(b"", metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason in (caught.value.details() or "")


async def test_missing_scope_is_permission_denied(idp: Idp, serve: Any) -> None:
    echo = await serve(Validator(validator_config(idp)))
    async with AsyncTokenSource(idp.secret_client(scope="pdp.read")) as read_only:
        token = await read_only.token()
    async with grpc.aio.insecure_channel(echo.target) as channel:
        for method in ("Who", "Count"):
            call = channel.unary_unary if method == "Who" else channel.unary_stream
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                result = call(f"/{SERVICE}/{method}")(b"1", metadata=bearer(token))
                if method == "Count":
                    result = [m async for m in result]
                else:
                    await result
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "pdp.decide" in (caught.value.details() or "")


async def test_jwks_down_with_empty_cache_is_unauthenticated(
    idp: Idp, serve: Any, tokens: AsyncTokenSource
) -> None:
    token = await tokens.token()
    echo = await serve(Validator(validator_config(idp)))
    idp.jwks_outage(True)
    try:
        async with grpc.aio.insecure_channel(echo.target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await channel.unary_unary(f"/{SERVICE}/Who")(b"", metadata=bearer(token))
    finally:
        idp.jwks_outage(False)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "signing keys are unavailable" in (caught.value.details() or "")


async def test_key_rotation_is_picked_up_by_a_running_server(idp: Idp, serve: Any) -> None:
    keys = RemoteKeys(idp.jwks_uri, min_refresh_interval=0.2)
    echo = await serve(Validator(validator_config(idp), keys))
    async with grpc.aio.insecure_channel(echo.target) as channel:
        who = channel.unary_unary(f"/{SERVICE}/Who")
        async with AsyncTokenSource(idp.secret_client(scope="pdp.decide")) as before:
            assert await who(b"", metadata=bearer(await before.token())) == b"sidecar-basic"
        new_kid = await asyncio.to_thread(idp.rotate)
        await asyncio.sleep(0.25)  # past the refresh rate limit
        async with AsyncTokenSource(idp.secret_client(scope="pdp.decide")) as after:
            token = await after.token()
        assert jwt.get_unverified_header(token)["kid"] == new_kid
        assert await who(b"", metadata=bearer(token)) == b"sidecar-basic"
    keys.close()


async def test_client_retries_once_with_a_new_token_after_unauthenticated(
    idp: Idp, serve: Any, tokens: AsyncTokenSource
) -> None:
    validator = RevokingValidator(validator_config(idp))
    validator.revoked = set()
    echo = await serve(validator)
    first = await tokens.token()
    validator.revoked.add(jwt.decode(first, options={"verify_signature": False})["jti"])
    async with authed_channel(echo.target, tokens) as channel:
        assert await channel.unary_unary(f"/{SERVICE}/Who")(b"") == b"sidecar-basic"
    second = await tokens.token()
    assert second != first
    assert echo.calls == ["Who"]  # the rejected attempt never reached the handler


async def test_client_retries_only_once(idp: Idp, serve: Any, tokens: AsyncTokenSource) -> None:
    class RefuseAll(Validator):
        attempts = 0

        async def validate_async(self, token: str) -> Any:
            type(self).attempts += 1
            raise Unauthenticated("nothing is accepted here")

    echo = await serve(RefuseAll(validator_config(idp)))
    async with authed_channel(echo.target, tokens) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary(f"/{SERVICE}/Who")(b"")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert RefuseAll.attempts == 2


async def test_rejected_stream_drops_the_token(
    idp: Idp, serve: Any, tokens: AsyncTokenSource
) -> None:
    validator = RevokingValidator(validator_config(idp))
    echo = await serve(validator)
    first = await tokens.token()
    validator.revoked = {jwt.decode(first, options={"verify_signature": False})["jti"]}
    async with authed_channel(echo.target, tokens) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [m async for m in channel.unary_stream(f"/{SERVICE}/Count")(b"2")]
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # The caller's next attempt (its reconnect) goes out with a new token and succeeds.
        streamed = [m async for m in channel.unary_stream(f"/{SERVICE}/Count")(b"2")]
    assert streamed == [b"sidecar-basic:0", b"sidecar-basic:1"]
    assert await tokens.token() != first


class _SlowJwks(BaseHTTPRequestHandler):
    upstream = ""
    delay = 0.5

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = httpx.get(self.upstream, timeout=5).content
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_jwks(idp: Idp) -> Iterator[str]:
    handler = type("SlowJwks", (_SlowJwks,), {"upstream": idp.jwks_uri})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


async def test_jwks_fetch_does_not_block_the_event_loop(
    idp: Idp, serve: Any, tokens: AsyncTokenSource, slow_jwks: str
) -> None:
    token = await tokens.token()
    echo = await serve(Validator(validator_config(idp, jwks_uri=slow_jwks)))
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        async with grpc.aio.insecure_channel(echo.target) as channel:
            started = time.monotonic()
            answer = await channel.unary_unary(f"/{SERVICE}/Who")(b"", metadata=bearer(token))
            elapsed = time.monotonic() - started
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    assert answer == b"sidecar-basic"
    assert elapsed >= 0.5  # the JWKS fetch really was slow
    assert ticks >= 20  # and the loop kept running meanwhile
