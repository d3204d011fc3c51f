"""Dramatiq broker: Redis when REDIS_URL is set, otherwise in-process (StubBroker + threads)."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.db import session_factory

_local = threading.local()
_actors: list[dramatiq.Actor[Any, Any]] = []
_broker: dramatiq.Broker | None = None


class DbSessionMiddleware(Middleware):
    """One database session per actor message: committed on success, always closed."""

    def before_process_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        _local.session = session_factory()()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        session: Session | None = getattr(_local, "session", None)
        if session is None:
            return
        try:
            if exception is None:
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()
            _local.session = None

    def after_skip_message(self, broker: dramatiq.Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message, exception=None)


def current_session() -> Session:
    """The session opened for the actor message being processed on this thread."""
    session: Session | None = getattr(_local, "session", None)
    if session is None:
        raise RuntimeError("no actor session: call from inside an actor")
    return session


def build_broker(settings: Settings) -> dramatiq.Broker:
    """A Redis broker when REDIS_URL is set, else an in-process one."""
    broker: dramatiq.Broker
    if settings.redis_url:
        broker = RedisBroker(url=settings.redis_url)  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    broker.add_middleware(DbSessionMiddleware())
    return broker


def configure_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """Install a broker for the current settings and move every declared actor onto it."""
    global _broker
    broker = build_broker(settings or get_settings())
    dramatiq.set_broker(broker)
    for actor in _actors:
        actor.broker = broker
        broker.declare_actor(actor)
    _broker = broker
    return broker


def get_broker() -> dramatiq.Broker:
    """The installed broker, configured from settings on first use."""
    return _broker if _broker is not None else configure_broker()


def actor(**options: Any) -> Any:
    """Declare a Dramatiq actor on our broker and remember it for reconfiguration."""

    def decorate(fn: Any) -> dramatiq.Actor[Any, Any]:
        declared: dramatiq.Actor[Any, Any] = dramatiq.actor(broker=get_broker(), **options)(fn)
        _actors.append(declared)
        return declared

    return decorate


def start_inprocess_worker(threads: int = 4) -> dramatiq.Worker:
    """Start worker threads in this process (the embedded default)."""
    worker = dramatiq.Worker(get_broker(), worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker
