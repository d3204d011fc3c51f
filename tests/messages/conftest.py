"""Messages fixtures: the delivery loopback providers, for sends of exploding templates."""

from tests.delivery.conftest import dsettings, esms_server, smtp_sink, zns_server

__all__ = ["dsettings", "esms_server", "smtp_sink", "zns_server"]
