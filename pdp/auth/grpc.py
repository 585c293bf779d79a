"""Bearer tokens over grpc.aio: a server interceptor that validates, a client one that sends.

Server: `grpc.aio.server(interceptors=[BearerAuthInterceptor(validator)])`; handlers read the
caller with `current_principal()`. Handlers must be async (coroutines or async generators).

Client: `grpc.aio.insecure_channel(target, interceptors=bearer_interceptors(tokens))`
(or a secure channel). Unary calls rejected with UNAUTHENTICATED are retried once with a new
token; a response stream that fails with UNAUTHENTICATED drops the token, so the caller's next
attempt gets a new one (a half-consumed stream cannot be replayed transparently).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextvars import ContextVar
from typing import Any

import grpc
import grpc.aio

from pdp.auth.client import AsyncTokenSource
from pdp.auth.errors import PermissionDenied, Unauthenticated
from pdp.auth.validator import Principal, Validator

logger = logging.getLogger("pdp.auth")

AUTHORIZATION = "authorization"

_principal: ContextVar[Principal | None] = ContextVar("pdp_auth_principal", default=None)


def current_principal() -> Principal | None:
    """The authenticated caller of the RPC being served (None on a public method)."""
    return _principal.get()


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token of the single `authorization: Bearer ...` entry; raises Unauthenticated."""
    values = [value for key, value in metadata or () if key.lower() == AUTHORIZATION]
    if not values:
        raise Unauthenticated("missing authorization metadata (expected 'Bearer <token>')")
    if len(values) > 1 or not isinstance(values[0], str):
        raise Unauthenticated("expected exactly one authorization metadata entry")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authorization metadata is not a Bearer token")
    return token.strip()


Authenticate = Callable[[grpc.aio.ServicerContext], Awaitable[Principal]]
Behavior = Callable[..., Any]


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid token: UNAUTHENTICATED, or PERMISSION_DENIED for scope.

    `public_methods` (full names such as "/grpc.health.v1.Health/Check") skip the check.
    """

    def __init__(self, validator: Validator, *, public_methods: Collection[str] = ()) -> None:
        self._validator = validator
        self._public = frozenset(public_methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in self._public:
            return handler
        return _guarded(handler, self._authenticate)

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Principal:
        try:
            token = bearer_token(context.invocation_metadata())
            return await self._validator.validate_async(token)
        except Unauthenticated as error:
            logger.debug("rejected call: %s", error)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
        except PermissionDenied as error:
            logger.debug("refused call: %s", error)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
        raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def _guarded(handler: grpc.RpcMethodHandler, authenticate: Authenticate) -> grpc.RpcMethodHandler:
    for attribute, make_handler in _KINDS:
        behavior = getattr(handler, attribute)
        if behavior is None:
            continue
        # Keep the handler's shape: grpc.aio dispatches on coroutine vs async generator.
        if inspect.isasyncgenfunction(behavior):
            guarded = _guard_generator(behavior, authenticate)
        else:
            guarded = _guard_coroutine(behavior, authenticate)
        return make_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


def _guard_coroutine(behavior: Behavior, authenticate: Authenticate) -> Behavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        _principal.set(await authenticate(context))  # each RPC runs in its own task
        return await behavior(request, context)

    return guarded


def _guard_generator(behavior: Behavior, authenticate: Authenticate) -> Behavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        _principal.set(await authenticate(context))
        async for response in behavior(request, context):
            yield response

    return guarded


def bearer_interceptors(tokens: AsyncTokenSource) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors adding `authorization: Bearer <token>` to unary and stream calls.

    Two objects, because grpc.aio files each interceptor under one call type only.
    """
    return [_UnaryBearer(tokens), _StreamBearer(tokens)]


_Continuation = Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]]


class _Bearer:
    """The call with the current token, for both call types."""

    def __init__(self, tokens: AsyncTokenSource) -> None:
        self._tokens = tokens

    async def _call(
        self, continuation: _Continuation, details: grpc.aio.ClientCallDetails, request: Any
    ) -> tuple[Any, str]:
        token = await self._tokens.token()
        return await continuation(_with_bearer(details, token), request), token


class _UnaryBearer(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: _Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call, token = await self._call(continuation, client_call_details, request)
        if await call.code() != grpc.StatusCode.UNAUTHENTICATED:
            return call
        # The server no longer accepts this token (revoked, rotated key, clock skew): once more.
        self._tokens.invalidate(token)
        call, _ = await self._call(continuation, client_call_details, request)
        return call


class _StreamBearer(_Bearer, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: _Continuation,
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call, token = await self._call(continuation, client_call_details, request)
        return self._responses(call, token)

    async def _responses(self, call: Any, token: str) -> AsyncIterator[Any]:
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._tokens.invalidate(token)
            raise


def _with_bearer(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(
        *((key, value) for key, value in details.metadata or () if key.lower() != AUTHORIZATION)
    )
    metadata.add(AUTHORIZATION, f"Bearer {token}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )
