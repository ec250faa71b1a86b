"""Server configuration: defaults, an optional TOML file, then command-line flags.

Every limit the handshake advertises is a ``chatproto.Limits`` field; the flags
for them are generated from that model, so a new limit gets a flag, a config
key and its help text without being listed here.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from chatproto import DEFAULT_PORT, PROTOCOL_VERSION, Limits, __version__
from reference_server.passwords import check_stored_password

VERSION_TEXT = f"chatproto-server {__version__} (spec v{PROTOCOL_VERSION})"
OPERATORS_ENV = "CHATPROTO_OPERATORS"
"""Environment variable holding operators as an --oper-file does: NAME:PASSWORD lines."""


def _stored_password(value: str) -> str:
    check_stored_password(value)
    return value


OperatorPassword = Annotated[str, Field(min_length=1), AfterValidator(_stored_password)]
"""A hash from ``chatproto-server hash-password``, or a plain password not starting with scrypt$."""


class ConfigError(Exception):
    """The configuration cannot be used; the message says why, in one line."""


class ServerConfig(BaseModel):
    """Everything the reference server can be told."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535,
                      description="TCP port to listen on; 0 picks a free one.")
    limits: Limits = Field(default_factory=Limits,
                           description="What WELCOME advertises (see the spec's limits page).")
    server_name: str = Field(default=f"chatproto-reference-server/{__version__}",
                             description="Server software name sent in WELCOME.")
    motd: str = Field(default="", description="Message of the day, sent as NOTICE after WELCOME.")
    operators: dict[str, OperatorPassword] = Field(
        default_factory=dict,
        description="Operator name -> password, for OPER: the line `chatproto-server "
        "hash-password` prints (scrypt$...), or a plain password that does not start "
        "with scrypt$.",
    )
    tls_cert: Path | None = Field(default=None, description="TLS certificate chain (PEM).")
    tls_key: Path | None = Field(default=None, description="TLS private key (PEM).")
    data_dir: Path = Field(default=Path("chatproto-data"),
                           description="Directory of the SQLite database (accounts, history).")
    history_depth: int = Field(default=1000, ge=1,
                               description="Messages kept per room for replay and paging.")
    max_output_buffer: int = Field(
        default=1_048_576, ge=65_536,
        description="Bytes queued to one client before it is dropped as a slow consumer.",
    )
    # What one client can make the server hold or compute (issue 11). Rooms
    # cost memory and a row each; an empty room is deleted when its last member
    # leaves, so the cap counts rooms that hold something. A list answer is
    # built in one loop turn: 1,000 entries take a few milliseconds and about
    # 40 kB, well within max_output_buffer.
    max_rooms: int = Field(
        default=10_000, ge=1, description="Rooms the server holds; a JOIN that would create "
        "one more is refused with TOO_MANY_ROOMS.")
    max_list_entries: int = Field(
        default=1000, ge=100, description="Most ROOM_INFO or USER_INFO frames in one answer to "
        "LIST_ROOMS, LIST_USERS or LIST_MEMBERS; a NOTICE says when a list was cut.")
    # Every connection of one IP address also draws on that address's two
    # buckets, so reconnecting does not refill them. 64, as many as the
    # connections one address may hold (max_connections_per_address): an
    # address gets what it would holding all of them open, and closing and
    # reopening them adds nothing. (The conformance kit, from one address,
    # needs about that much: 16 fails its history cases.)
    address_rate_factor: int = Field(
        default=64, ge=0, description="Each client address has message and command buckets "
        "this many times a connection's (burst and rate), shared by all its connections; "
        "0 turns them off.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging threshold.")
    log_format: Literal["text", "json"] = Field(default="text",
                                                description="One line per record: text or JSON.")
    shutdown_grace_s: float = Field(
        default=5.0, gt=0, description="Seconds to let clients drain the shutdown notice.")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto", description="The event loop: uvloop (pip install 'chatproto[fast]'), "
        "asyncio's own, or auto: uvloop when it is installed.")
    # Connection limits. The reference server runs one process on one machine;
    # 10,000 connections is what a small one serves without trouble (C10k) and
    # is lowered at start-up to what the file-descriptor limit allows. Per
    # address, IRC servers allow 3 to 10 by default (InspIRCd's localmax 3,
    # UnrealIRCd's maxperip 3); a classroom or an office behind one NAT address
    # opens dozens, hence 64: enough for a lab, few enough that one host cannot
    # take a large share of the total.
    hello_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a new connection has to complete its "
        "handshake (WELCOME) before it is closed with IDLE_TIMEOUT; the spec's floor is 5 "
        "(CP-HS-12): less is for tests only.")
    max_connections: int = Field(
        default=10_000, ge=1, description="Connections held at once; more are refused with "
        "TOO_MANY_CONNECTIONS (lowered to what the file-descriptor limit allows).")
    max_connections_per_address: int = Field(
        default=64, ge=1, description="Connections held at once from one IP address; more "
        "are refused with TOO_MANY_CONNECTIONS.")
    # Password guessing (CP-SEC-7, CP-SEC-11): a failed login takes a token from
    # its nick's bucket and from its address's (a right password takes nothing);
    # with none left, logins for that nick or from that address are refused with
    # RATE_LIMITED without a password check. Per nick, 10 tries (OWASP's usual
    # lockout threshold; the conformance kit tries 8 wrong spellings of one
    # password) then 2 a minute: about 3,000 guesses a day, where one socket
    # made 20 a second without it. Per address it is looser, since a classroom
    # behind one NAT address mistypes together (and the kit, from one address,
    # fails some 35 logins in a run).
    auth_failure_burst_per_nick: int = Field(
        default=10, ge=1, description="Failed logins (HELLO with a password, LOGIN) allowed "
        "at once for one nick.")
    auth_failure_interval_per_nick_s: float = Field(
        default=30.0, gt=0, description="Seconds after which one more failed login is "
        "allowed for one nick.")
    auth_failure_burst_per_address: int = Field(
        default=50, ge=1, description="Failed logins allowed at once from one IP address.")
    auth_failure_interval_per_address_s: float = Field(
        default=5.0, gt=0, description="Seconds after which one more failed login is "
        "allowed from one IP address.")
    # Each account costs an scrypt hash and a row kept forever. 30 at once lets
    # a class register together; then one a minute per address.
    account_creation_burst_per_address: int = Field(
        default=30, ge=1, description="Accounts (REGISTER) one IP address may create at once.")
    account_creation_interval_per_address_s: float = Field(
        default=60.0, gt=0, description="Seconds after which one IP address may create one "
        "more account.")

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.history_depth < self.limits.history_on_join:
            raise ValueError("history_depth must be at least limits.history_on_join")
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "chatproto.sqlite3"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _default_text(name: str) -> str:
    default = ServerConfig.model_fields[name].get_default(call_default_factory=True)
    if default is None or default == "":
        return "none"
    if isinstance(default, Path) and not default.is_absolute():
        return f"./{default}"
    return str(default)


def _help(name: str) -> str:
    """The help of the flag for setting ``name``: its description and its default."""
    return f"{ServerConfig.model_fields[name].description} (default {_default_text(name)})"


_LIMIT_FLAGS: tuple[tuple[str, str, type], ...] = (
    ("hello_timeout_s", "SECONDS", float),
    ("max_connections", "N", int),
    ("max_connections_per_address", "N", int),
    ("auth_failure_burst_per_nick", "N", int),
    ("auth_failure_interval_per_nick_s", "SECONDS", float),
    ("auth_failure_burst_per_address", "N", int),
    ("auth_failure_interval_per_address_s", "SECONDS", float),
    ("account_creation_burst_per_address", "N", int),
    ("account_creation_interval_per_address_s", "SECONDS", float),
    ("max_rooms", "N", int),
    ("max_list_entries", "N", int),
    ("address_rate_factor", "N", int),
)
"""The server's own limits (not advertised in WELCOME): config key, flag metavar, type."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatproto-server",
        description="The chatproto v1 reference server. Settings come from the defaults, "
        "then the --config file, then these flags.",
        epilog="`chatproto-server hash-password` reads a password and prints its scrypt hash, "
        "for the [operators] table of a config file (`chatproto-server hash-password --help`).",
    )
    parser.add_argument("--version", action="version", version=VERSION_TEXT)
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="TOML file with any of the settings below: limits in a [limits] "
                        "table, operators in an [operators] table of name = password "
                        "(default none)")
    parser.add_argument("--host", help=_help("host"))
    parser.add_argument("--port", type=int, help=_help("port"))
    parser.add_argument("--server-name", metavar="NAME", help=_help("server_name"))
    parser.add_argument("--motd", metavar="TEXT", help=_help("motd"))
    parser.add_argument("--oper", action="append", metavar="NAME:PASSWORD", default=[],
                        help="Add an operator (repeatable); PASSWORD as for the [operators] "
                        "table. Every user of this machine can read it in the process "
                        "list: use --oper-file or " + OPERATORS_ENV + " for real passwords "
                        "(default none)")
    parser.add_argument("--oper-file", type=Path, metavar="FILE",
                        help="Read operators from FILE, one NAME:PASSWORD per line (PASSWORD "
                        "as for --oper; blank lines and lines starting with # are skipped). "
                        f"The environment variable {OPERATORS_ENV} may hold the same lines. "
                        "Operators from the config file, then " + OPERATORS_ENV + ", then "
                        "--oper-file, then --oper; a later one replaces an earlier one of "
                        "the same name (default none)")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help=_help("tls_cert"))
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help=_help("tls_key"))
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help=_help("data_dir"))
    parser.add_argument("--history-depth", type=int, metavar="N", help=_help("history_depth"))
    parser.add_argument("--max-output-buffer", type=int, metavar="BYTES",
                        help=_help("max_output_buffer"))
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help=_help("log_level"))
    parser.add_argument("--log-format", choices=["text", "json"], help=_help("log_format"))
    parser.add_argument("--event-loop", choices=["auto", "asyncio", "uvloop"],
                        help=_help("event_loop"))
    own = parser.add_argument_group("the server's own limits (not advertised)")
    for name, metavar, kind in _LIMIT_FLAGS:
        own.add_argument(_flag(name), type=kind, metavar=metavar, help=_help(name))
    limits = parser.add_argument_group("limits advertised in WELCOME")
    for name, info in Limits.model_fields.items():
        limits.add_argument(_flag(name), type=int, dest=f"limit_{name}", metavar="N",
                            help=f"{info.description} (default {info.default})")
    return parser


def parse_operator_lines(text: str, where: str) -> dict[str, str]:
    """Operators from ``NAME:PASSWORD`` lines, as ``--oper-file`` and ``CHATPROTO_OPERATORS``
    hold them. A line is taken without its surrounding white space; blank lines and
    lines that start with ``#`` are skipped. An error names the line by its number,
    never by its content, which may be a password."""
    operators: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        name, sep, password = entry.partition(":")
        if not sep or not name or not password:
            raise ConfigError(f"{where} line {number}: wants NAME:PASSWORD")
        operators[name] = password
    return operators


def _operator_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read --oper-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read --oper-file {path}: not UTF-8 text") from None
    return parse_operator_lines(text, f"--oper-file {path}")


def load_config(argv: list[str] | None = None,
                environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The configuration from ``--config FILE`` (if any) overlaid with the flags.

    Operators also come from ``environ`` (``os.environ`` by default): see
    ``OPERATORS_ENV``.
    """
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    if args.config is not None:
        try:
            settings = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {args.config}: {exc}") from None
    limits = settings.pop("limits", {})
    operators = settings.pop("operators", {})
    for table, value in (("limits", limits), ("operators", operators)):
        if not isinstance(value, dict):
            raise ConfigError(f"{table} must be a table ([{table}]) in {args.config}")
    limits, operators = dict(limits), dict(operators)
    for key in ("host", "port", "server_name", "motd", "tls_cert", "tls_key", "data_dir",
                "history_depth", "max_output_buffer", "log_level", "log_format", "event_loop",
                *(name for name, _, _ in _LIMIT_FLAGS)):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    for name in Limits.model_fields:
        value = getattr(args, f"limit_{name}")
        if value is not None:
            limits[name] = value
    operators.update(parse_operator_lines(environ.get(OPERATORS_ENV, ""), OPERATORS_ENV))
    if args.oper_file is not None:
        operators.update(_operator_file(args.oper_file))
    for entry in args.oper:
        name, sep, password = entry.partition(":")
        if not sep or not name or not password:  # never echo it: it may be a password
            raise ConfigError("--oper wants NAME:PASSWORD")
        operators[name] = password
    try:
        checked_limits = Limits(**limits)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, "limits")) from None
    try:
        return ServerConfig(limits=checked_limits, operators=operators, **settings)
    except ValidationError as exc:
        raise ConfigError(_problems(exc, "config")) from None


def _problems(exc: ValidationError, where: str) -> str:
    return "; ".join(
        f"{'.'.join([where, *(str(part) for part in error['loc'])])}: {error['msg']}"
        for error in exc.errors()
    )
