"""The classic design, speaking chatproto: a thread per client, one global lock, ``send`` to each.

This is the course brief's sample server (``../shared/seed`` in the project's
history: ``threading.Thread`` per accepted socket, a ``clients_lock`` around
the shared state, a broadcast loop that calls ``sendall`` for every member)
with our protocol in place of lines of text, so that ``bench/load.py`` can
give every figure of the reference server as a ratio against it, measured in
the same run. It implements what the benchmark scenarios use (HELLO, JOIN,
SEND_ROOM, SEND_PRIVATE, PING, QUIT) and nothing else: no history, no
accounts, no rate limits, no slow-reader protection. Each connection's bytes
go through ``chatproto.Connection``, so decoding and validation cost what
they cost the reference server.

Run: ``python bench/classic_server.py --port 0``; it prints
``listening on HOST:PORT`` on stderr, as the reference server does.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading
import time

from chatproto import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    ErrorCode,
    FrameRejected,
    LocalProtocolError,
    RemoteProtocolError,
    Sender,
    encode,
    error_message,
    fold,
)
from chatproto.messages import (
    Bye,
    Error,
    Hello,
    Join,
    Limits,
    Message,
    Ok,
    Ping,
    Pong,
    PrivateMessage,
    Quit,
    RoomMessage,
    SendPrivate,
    SendRoom,
    Welcome,
)


class Client:
    """One accepted socket and its protocol state; its thread is the only reader."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self.sock = sock
        self.conn = Connection(Sender.SERVER, limits)
        self.nick = ""
        self.rooms: set[str] = set()


class ClassicServer:
    """The shared state, all of it behind ``lock``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.lock = threading.Lock()
        self.nicks: dict[str, Client] = {}
        self.rooms: dict[str, list[Client]] = {}
        self.last_seq: dict[str, int] = {}
        self.next_msg_id = 1

    def serve(self, host: str, port: int) -> None:
        listener = socket.create_server((host, port), backlog=4096)
        bound = listener.getsockname()
        print(f"listening on {bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
        while True:
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = Client(sock, self.limits)
            threading.Thread(target=self.handle, args=(client,), daemon=True).start()

    # ------------------------------------------------------------ one client

    def handle(self, client: Client) -> None:
        try:
            while True:
                data = client.sock.recv(65536)
                client.conn.receive_data(data)
                while (event := client.conn.next_event()) is not NEED_DATA:
                    if isinstance(event, ConnectionClosed):
                        return
                    if isinstance(event, FrameRejected):
                        self.reply(client, event.error_reply())
                    else:
                        self.dispatch(client, event)
                if not data:
                    return
        except RemoteProtocolError as exc:
            with contextlib.suppress(LocalProtocolError, OSError):
                client.sock.sendall(client.conn.send(error_message(exc)))
        except OSError:
            pass
        finally:
            self.forget(client)
            client.sock.close()

    def reply(self, client: Client, message: Message) -> None:
        # A thread writes its own client's answers; broadcasts hold the lock.
        with self.lock:
            client.sock.sendall(client.conn.send(message))

    def refuse(self, client: Client, request: Message, code: ErrorCode, detail: str) -> None:
        self.reply(client, Error(request_id=request.request_id, code=int(code), fatal=False,
                                 detail=detail))

    def dispatch(self, client: Client, request: Message) -> None:
        if isinstance(request, Hello):
            self.hello(client, request)
        elif isinstance(request, Join):
            with self.lock:
                room = fold(request.room)
                members = self.rooms.setdefault(room, [])
                if client not in members:
                    members.append(client)
                client.rooms.add(room)
                last_seq = self.last_seq.setdefault(room, 0)
                client.sock.sendall(client.conn.send(Ok(request_id=request.request_id,
                                                        seq=last_seq)))
        elif isinstance(request, SendRoom):
            self.send_room(client, request)
        elif isinstance(request, SendPrivate):
            self.send_private(client, request)
        elif isinstance(request, Ping):
            self.reply(client, Pong(request_id=request.request_id, token=request.token))
        elif isinstance(request, Quit):
            self.reply(client, Bye(request_id=request.request_id))
        elif isinstance(request, Pong | Error):
            pass
        else:
            self.refuse(client, request, ErrorCode.UNKNOWN_TYPE,
                        f"{request.NAME} is not part of the classic server")

    def hello(self, client: Client, request: Hello) -> None:
        with self.lock:
            taken = fold(request.nick) in self.nicks
            if not taken:
                client.nick = request.nick
                self.nicks[fold(request.nick)] = client
        if taken:
            self.refuse(client, request, ErrorCode.NICK_IN_USE, "nick in use")
            return
        self.reply(client, Welcome(request_id=request.request_id, version=1,
                                   server_name="classic-thread-per-client/1", nick=request.nick,
                                   logged_in=False, casemapping="ascii",
                                   **self.limits.model_dump()))

    def send_room(self, client: Client, request: SendRoom) -> None:
        room = fold(request.room)
        with self.lock:
            members = self.rooms.get(room)
            if members is None or client not in members:
                client.sock.sendall(client.conn.send(Error(
                    request_id=request.request_id, code=int(ErrorCode.NOT_IN_ROOM),
                    fatal=False, detail="not in the room")))
                return
            seq = self.last_seq[room] = self.last_seq[room] + 1
            msg_id, self.next_msg_id = self.next_msg_id, self.next_msg_id + 1
            now_ms = int(time.time() * 1000)
            frame = encode(RoomMessage(room=request.room, seq=seq, msg_id=msg_id,
                                       timestamp_ms=now_ms, sender=client.nick,
                                       client_msg_id=request.client_msg_id, history=False,
                                       text=request.text))
            for member in members:  # the classic broadcast: one send per member
                if member is not client:
                    with contextlib.suppress(OSError):
                        member.sock.sendall(frame)
            client.sock.sendall(client.conn.send(Ok(request_id=request.request_id,
                                                    msg_id=msg_id, seq=seq,
                                                    timestamp_ms=now_ms)))

    def send_private(self, client: Client, request: SendPrivate) -> None:
        with self.lock:
            target = self.nicks.get(fold(request.nick))
            if target is None:
                client.sock.sendall(client.conn.send(Error(
                    request_id=request.request_id, code=int(ErrorCode.NO_SUCH_NICK),
                    fatal=False, detail="no such nick")))
                return
            msg_id, self.next_msg_id = self.next_msg_id, self.next_msg_id + 1
            now_ms = int(time.time() * 1000)
            with contextlib.suppress(OSError):
                target.sock.sendall(encode(PrivateMessage(
                    msg_id=msg_id, timestamp_ms=now_ms, sender=client.nick,
                    client_msg_id=request.client_msg_id, text=request.text)))
            client.sock.sendall(client.conn.send(Ok(request_id=request.request_id,
                                                    msg_id=msg_id, timestamp_ms=now_ms)))

    def forget(self, client: Client) -> None:
        with self.lock:
            if client.nick and self.nicks.get(fold(client.nick)) is client:
                del self.nicks[fold(client.nick)]
            for room in client.rooms:
                members = self.rooms.get(room, [])
                if client in members:
                    members.remove(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", help="ignored: the classic server keeps nothing")
    parser.add_argument("--msg-rate-burst", type=int, default=65535)
    parser.add_argument("--msg-rate-interval-ms", type=int, default=1)
    args, _ = parser.parse_known_args(argv)
    limits = Limits(msg_rate_burst=args.msg_rate_burst,
                    msg_rate_interval_ms=args.msg_rate_interval_ms)
    with contextlib.suppress(KeyboardInterrupt):
        ClassicServer(limits).serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
