"""chatproto-conformance: checks any chatproto v1 implementation over the network.

The kit plays a client against a server under test (``server`` suite), or a
server against a client under test (``client`` suite). It builds and reads
frames from ``chatproto``'s schema and takes its expectations from the spec
pages, whose requirement IDs every case cites. It never imports the reference
server or client, nor the sans-IO state machine.
"""

__version__ = "0.1.0"
