"""The reference server's configuration: defaults, a TOML file, flags, and their errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chatproto import DEFAULT_PORT, Limits, __version__
from reference_server.config import ConfigError, ServerConfig, build_parser, load_config
from reference_server.passwords import hash_password, is_hash, verify_password

ROOT = Path(__file__).resolve().parent.parent

LIMIT_NAMES = list(Limits.model_fields)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _other_value(name: str) -> int:
    """A valid value for limit ``name`` that is not its default (every default minus one is)."""
    default = Limits.model_fields[name].default
    assert isinstance(default, int)
    return default - 1


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _config_error(argv: list[str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(argv)
    message = str(caught.value)
    assert message, "a ConfigError needs a message"
    assert "\n" not in message, f"not one line: {message!r}"
    return message


# ------------------------------------------------------------------ defaults


def test_defaults() -> None:
    config = load_config([])
    assert config.host == "127.0.0.1"
    assert config.port == DEFAULT_PORT == 7878
    assert config.limits == Limits()
    assert config.operators == {}
    assert config.motd == ""
    assert config.tls_cert is None and config.tls_key is None
    assert config.data_dir == Path("chatproto-data")
    assert config.database_path == Path("chatproto-data") / "chatproto.sqlite3"
    assert config.history_depth == 1000
    assert config.max_output_buffer == 1_048_576
    assert config.log_level == "INFO"
    assert config.log_format == "text"
    assert config.shutdown_grace_s == 5.0
    assert config.server_name.startswith("chatproto-reference-server/")


def test_default_limits_are_the_spec_reference_defaults() -> None:
    limits = load_config([]).limits
    assert limits.model_dump() == {
        "max_frame_size": 65536, "max_nick_length": 32, "max_room_name_length": 64,
        "max_message_length": 4096, "max_topic_length": 390, "max_rooms_per_user": 32,
        "msg_rate_burst": 20, "msg_rate_interval_ms": 500, "cmd_rate_burst": 40,
        "cmd_rate_interval_ms": 250, "keepalive_interval_s": 30, "idle_timeout_s": 90,
        "history_on_join": 50, "history_page_max": 200,
    }


def test_server_config_is_frozen_and_rejects_unknown_fields() -> None:
    config = ServerConfig()
    with pytest.raises(ValueError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        ServerConfig(no_such_setting=1)  # type: ignore[call-arg]


# ----------------------------------------------------------------- TOML file


def test_toml_file_with_top_level_keys_limits_and_operators(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "server.toml", f"""
host = "127.0.0.2"
port = 0
server_name = "test-server/9"
motd = "hello from the file"
data_dir = "{(tmp_path / 'data').as_posix()}"
history_depth = 77
max_output_buffer = 200000
log_level = "DEBUG"
log_format = "json"
shutdown_grace_s = 0.5

[limits]
max_message_length = 1000
history_on_join = 10
keepalive_interval_s = 5
idle_timeout_s = 12

[operators]
admin = "secret"
"second op" = "other"
""")
    config = load_config(["--config", str(config_file)])
    assert config.host == "127.0.0.2"
    assert config.port == 0
    assert config.server_name == "test-server/9"
    assert config.motd == "hello from the file"
    assert config.data_dir == tmp_path / "data"
    assert config.history_depth == 77
    assert config.max_output_buffer == 200000
    assert config.log_level == "DEBUG"
    assert config.log_format == "json"
    assert config.shutdown_grace_s == 0.5
    assert config.limits == Limits(max_message_length=1000, history_on_join=10,
                                   keepalive_interval_s=5, idle_timeout_s=12)
    assert config.operators == {"admin": "secret", "second op": "other"}


def test_toml_tls_paths(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "tls.toml", 'tls_cert = "c.pem"\ntls_key = "k.pem"\n')
    config = load_config(["--config", str(config_file)])
    assert config.tls_cert == Path("c.pem")
    assert config.tls_key == Path("k.pem")


def test_flags_override_the_file(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "server.toml", """
port = 1234
motd = "from the file"
history_depth = 500
log_format = "json"

[limits]
max_nick_length = 10
history_on_join = 20

[operators]
admin = "file-password"
keeper = "kept"
""")
    config = load_config([
        "--config", str(config_file), "--port", "0", "--motd", "from a flag",
        "--max-nick-length", "20", "--oper", "admin:flag-password", "--oper", "extra:pw",
        "--log-format", "text",
    ])
    assert config.port == 0
    assert config.motd == "from a flag"
    assert config.log_format == "text"
    assert config.history_depth == 500  # not overridden: the file's value stays
    assert config.limits.max_nick_length == 20
    assert config.limits.history_on_join == 20  # the file's, merged with the flag's limits
    assert config.operators == {"admin": "flag-password", "keeper": "kept", "extra": "pw"}


def test_flags_without_a_file() -> None:
    config = load_config([
        "--host", "0.0.0.0", "--port", "0", "--server-name", "x/1", "--motd", "m",
        "--data-dir", "somewhere", "--history-depth", "60", "--max-output-buffer", "70000",
        "--log-level", "WARNING", "--log-format", "json",
        "--oper", "a:b", "--oper", "c:d:e",
    ])
    assert (config.host, config.port, config.server_name, config.motd) == ("0.0.0.0", 0,
                                                                         "x/1", "m")
    assert config.data_dir == Path("somewhere")
    assert (config.history_depth, config.max_output_buffer) == (60, 70000)
    assert (config.log_level, config.log_format) == ("WARNING", "json")
    # Only the first colon separates the name: a password may contain colons.
    assert config.operators == {"a": "b", "c": "d:e"}


@pytest.mark.parametrize("name", LIMIT_NAMES)
def test_every_limit_has_a_flag(name: str) -> None:
    value = _other_value(name)
    config = load_config([_flag(name), str(value)])
    assert getattr(config.limits, name) == value
    expected = Limits(**{name: value})
    assert config.limits == expected, "the flag changed another limit"


@pytest.mark.parametrize("name", LIMIT_NAMES)
def test_every_limit_can_be_set_in_the_file(tmp_path: Path, name: str) -> None:
    value = _other_value(name)
    config_file = _write(tmp_path / "limits.toml", f"[limits]\n{name} = {value}\n")
    config = load_config(["--config", str(config_file)])
    assert config.limits == Limits(**{name: value})


def test_every_limit_flag_is_in_the_parser() -> None:
    options = {option for action in build_parser()._actions for option in action.option_strings}
    missing = [_flag(name) for name in LIMIT_NAMES if _flag(name) not in options]
    assert not missing


# -------------------------------------------------------------------- errors


@pytest.mark.parametrize(("argv", "names"), [
    (["--max-frame-size", "100"], ("max_frame_size", "max-frame-size")),
    (["--max-frame-size", "70000"], ("max_frame_size", "max-frame-size")),
    (["--idle-timeout-s", "1"], ("idle_timeout_s", "idle-timeout-s")),
    (["--keepalive-interval-s", "90"], ("idle_timeout_s", "keepalive")),
    (["--max-nick-length", "0"], ("max_nick_length", "max-nick-length")),
    (["--max-nick-length", "33"], ("max_nick_length", "max-nick-length")),
    (["--max-message-length", "20000"], ("max_message_length", "max-message-length")),
    (["--msg-rate-interval-ms", "0"], ("msg_rate_interval_ms", "msg-rate-interval-ms")),
    (["--history-page-max", "0"], ("history_page_max", "history-page-max")),
    (["--max-room-name-length", "300"], ("max_room_name_length", "max-room-name-length")),
    (["--port", "70000"], ("port",)),
    (["--port", "-1"], ("port",)),
    (["--history-depth", "10"], ("history_depth", "history-depth")),
    (["--history-depth", "0"], ("history_depth", "history-depth")),
    (["--max-output-buffer", "1000"], ("max_output_buffer", "max-output-buffer")),
    (["--tls-cert", "cert.pem"], ("tls_cert", "tls-cert", "tls_key")),
    (["--tls-key", "key.pem"], ("tls_cert", "tls-key", "tls_key")),
    (["--oper", "admin"], ("--oper",)),
    (["--oper", ":password"], ("--oper",)),
    (["--oper", "admin:"], ("--oper",)),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_invalid_values_give_a_one_line_error_naming_the_setting(
        argv: list[str], names: tuple[str, ...]) -> None:
    message = _config_error(argv)
    assert any(name in message for name in names), message


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = _config_error(["--config", str(missing)])
    assert str(missing) in message


def test_unreadable_config_file(tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root (who ignores chmod 000).
    message = _config_error(["--config", str(tmp_path)])
    assert str(tmp_path) in message


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.toml", "port = \n[limits\n")
    message = _config_error(["--config", str(bad)])
    assert str(bad) in message


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('motd = "caf\u00e9"\n'.encode("latin-1"))
    message = _config_error(["--config", str(bad)])
    assert str(bad) in message


@pytest.mark.parametrize(("text", "name"), [
    ("no_such_setting = 1\n", "no_such_setting"),
    ('port = "seven"\n', "port"),
    ('log_format = "xml"\n', "log_format"),
    ("[limits]\nno_such_limit = 3\n", "no_such_limit"),
    ('[limits]\nmax_frame_size = "big"\n', "max_frame_size"),
    ("[operators]\nadmin = 5\n", "admin"),
])
def test_invalid_settings_in_the_file(tmp_path: Path, text: str, name: str) -> None:
    config_file = _write(tmp_path / "bad-values.toml", text)
    message = _config_error(["--config", str(config_file)])
    assert name in message


@pytest.mark.parametrize("text", ["limits = 5\n", 'operators = "admin:pw"\n'],
                         ids=["limits", "operators"])
def test_table_settings_that_are_not_tables(tmp_path: Path, text: str) -> None:
    config_file = _write(tmp_path / "not-a-table.toml", text)
    message = _config_error(["--config", str(config_file)])
    assert text.split(" ")[0] in message


@pytest.mark.parametrize("argv", [["--max-frame-size", "big"], ["--no-such-flag"],
                                  ["--log-format", "xml"], ["--port"]])
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        load_config(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


# ---------------------------------------------------------------------- help


def test_help_mentions_every_flag_with_its_help_text() -> None:
    env = dict(os.environ, COLUMNS="100")
    result = subprocess.run([sys.executable, "-m", "reference_server", "--help"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines; compare word sequences
    for flag in ("--config", "--host", "--port", "--server-name", "--motd", "--oper",
                 "--tls-cert", "--tls-key", "--data-dir", "--history-depth",
                 "--max-output-buffer", "--log-level", "--log-format"):
        assert flag in text, flag
    descriptions = ServerConfig.model_fields
    for name in ("host", "port", "server_name", "motd", "tls_cert", "tls_key", "data_dir",
                 "history_depth", "max_output_buffer", "log_level", "log_format"):
        description = descriptions[name].description
        assert description is not None
        assert description in text, (name, description)
    for name, info in Limits.model_fields.items():
        assert _flag(name) in text, name
        assert info.description, f"Limits.{name} has no description"
        assert f"{info.description} (default {info.default})" in text, name


# ----------------------------------------------------------------- operators

_VALID_HASH = hash_password("teacher's password", n=2**4)
_SALT, _DIGEST = _VALID_HASH.split("$")[4:]


@pytest.mark.parametrize("stored", [
    "scrypt$16384$8$1$...",  # the placeholder of README.md and the run-server guide
    "scrypt$",
    _VALID_HASH.rsplit("$", 1)[0],  # the digest left out
    _VALID_HASH + "$extra",
    _VALID_HASH[:-6],  # cut short: no longer base64
    f"scrypt$16384$8$one${_SALT}${_DIGEST}",
    f"scrypt$1000$8$1${_SALT}${_DIGEST}",  # N not a power of 2
    f"scrypt$16384$0$1${_SALT}${_DIGEST}",
    f"scrypt$1048576$8$1${_SALT}${_DIGEST}",  # more memory than the server allows
    f"scrypt$16384$8$1$!!!!${_DIGEST}",
    f"scrypt$16384$8$1${_SALT}$AAAA",  # a 3-byte digest
], ids=["placeholder", "prefix-only", "no-digest", "extra-field", "truncated", "r-not-number",
        "n-not-power-of-2", "r-zero", "too-much-memory", "salt-not-base64", "short-digest"])
def test_an_operator_value_that_looks_like_a_hash_must_be_one(tmp_path: Path,
                                                               stored: str) -> None:
    config_file = _write(tmp_path / "server.toml", f'[operators]\nteacher = "{stored}"\n')
    message = _config_error(["--config", str(config_file)])
    assert message.startswith("config.operators.teacher: "), message
    assert stored not in message or stored == "scrypt$", "the value may be a password"
    assert not is_hash(stored)
    with pytest.raises(ValueError):
        verify_password("teacher's password", stored)


def test_a_malformed_hash_given_with_oper_is_refused_too() -> None:
    message = _config_error(["--oper", "admin:scrypt$16384$8$1$..."])
    assert message.startswith("config.operators.admin: "), message
    assert "hash-password" in message


@pytest.mark.parametrize("stored", [_VALID_HASH, "plain password", "scrypt-ish$but$plain",
                                    "SCRYPT$16384$8$1$...", "$scrypt$"])
def test_a_whole_hash_or_a_plain_password_is_accepted(tmp_path: Path, stored: str) -> None:
    config_file = _write(tmp_path / "server.toml", f'[operators]\nteacher = "{stored}"\n')
    assert load_config(["--config", str(config_file)]).operators == {"teacher": stored}


def test_an_empty_operator_password_is_refused(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "server.toml", '[operators]\nteacher = ""\n')
    assert _config_error(["--config", str(config_file)]).startswith("config.operators.teacher: ")


@pytest.mark.parametrize("document", ["README.md", "spec/guides/run-server.md"])
def test_the_documented_placeholder_hash_is_refused(tmp_path: Path, document: str) -> None:
    """The docs' example config, copied as it is, fails at start-up rather than letting the
    placeholder ``scrypt$16384$8$1$...`` work as a password."""
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
              if "scrypt$16384$8$1$...\"" in b]
    assert blocks, f"no example config with the placeholder hash in {document}"
    config_file = _write(tmp_path / "example.toml", blocks[0])
    message = _config_error(["--config", str(config_file)])
    assert message.startswith("config.operators.teacher: "), message


def test_every_flag_states_its_default() -> None:
    undocumented = [
        action.option_strings[0] for action in build_parser()._actions
        if action.option_strings and action.dest not in ("help", "version")
        and not re.search(r" \(default [^()]+\)$", action.help or "")
    ]
    assert not undocumented


def test_help_states_the_defaults_people_look_for() -> None:
    result = subprocess.run([sys.executable, "-m", "reference_server", "--help"],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, COLUMNS="100"))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for expected in ("Address to listen on. (default 127.0.0.1)",
                     f"0 picks a free one. (default {DEFAULT_PORT})",
                     "Logging threshold. (default INFO)",
                     "One line per record: text or JSON. (default text)",
                     "(default ./chatproto-data)", "(default 1000)", "(default 1048576)",
                     "`chatproto-server hash-password --help`"):
        assert expected in text, expected


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "reference_server", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"chatproto-server {__version__} (spec v1)\n"


def test_the_guide_quotes_the_malformed_hash_error_as_the_server_prints_it(
        tmp_path: Path) -> None:
    config_file = _write(tmp_path / "server.toml",
                         '[operators]\nteacher = "scrypt$16384$8$1$..."\n')
    message = _config_error(["--config", str(config_file)])
    guide = (ROOT / "spec/guides/run-server.md").read_text(encoding="utf-8")
    assert f"\nchatproto-server: {message}\n" in guide
