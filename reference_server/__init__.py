"""The chatproto v1 reference server: asyncio, one sans-IO Connection per client."""

from reference_server.config import ServerConfig, load_config
from reference_server.server import ChatServer

__all__ = ["ChatServer", "ServerConfig", "load_config"]
