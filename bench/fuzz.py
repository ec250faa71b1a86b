"""Coverage-guided fuzzing of the sans-IO core, for as long as you like.

Run: ``python bench/fuzz.py --target decoder|client|server --seconds 300``.

It checks the properties of tests/fuzz_properties.py (the normal test run
checks them briefly with hypothesis): no exception but a fatal
RemoteProtocolError escapes, every call returns, less than one frame is ever
buffered, nothing once CLOSED, and cutting the stream differently changes
nothing. The ``fuzz`` extra installs atheris (``pip install -e .[fuzz]``);
without it, or with ``--engine hypothesis``, the same properties run under
hypothesis for the same time.

Under atheris the run happens in a child process, since libFuzzer exits when
it is done; its log, its corpus and any crashing input are kept under
``--workdir`` (default ``artifacts/fuzz/TARGET``). The last line is the report:
executions, coverage (libFuzzer's ``cov`` edges and ``ft`` features), crashes.
The exit status is 0 when nothing was found.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
TARGETS = ("decoder", "client", "server")
MAX_CUTS = 12


def _import_properties() -> Any:
    """tests/fuzz_properties.py, imported the way the test run imports it."""
    sys.path[:0] = [str(TESTS), str(ROOT)]
    import fuzz_properties

    return fuzz_properties


# ------------------------------------------------------- one input from octets
#
# An atheris input is two selector octets and the stream: the first picks the
# decoder's limit, or the connection's prefix and whether the stream ends with
# EOF (its top bit clear); the second seeds where the stream is cut (0: whole).


def _cuts(seed: int, size: int) -> list[int]:
    if seed == 0 or size == 0:
        return []
    rng = random.Random(seed)
    return [rng.randrange(size + 1) for _ in range(rng.randrange(1, MAX_CUTS + 1))]


def input_checker(target: str, props: Any) -> Callable[[bytes], None]:
    """The function that checks one fuzzer input against ``target``'s properties."""
    if target == "decoder":
        limits = props.FRAME_LIMITS

        def check_decoder_input(data: bytes) -> None:
            if len(data) < 2:
                return
            stream = data[2:]
            props.check_decoder_split_invariance(limits[data[0] % len(limits)], stream,
                                                 _cuts(data[1], len(stream)))

        return check_decoder_input
    role = props.CLIENT if target == "client" else props.SERVER
    prefixes = props.PREFIX_NAMES[role]

    def check_connection_input(data: bytes) -> None:
        if len(data) < 2:
            return
        stream = data[2:]
        props.check_split_invariance(role, prefixes[data[0] % len(prefixes)], stream,
                                     _cuts(data[1], len(stream)), eof=not data[0] & 0x80)

    return check_connection_input


def seed_inputs(target: str, props: Any) -> list[bytes]:
    """A starting corpus: each vector frame alone, and a few whole sessions, in every prefix."""
    if target == "decoder":
        selectors = range(len(props.FRAME_LIMITS))
        frames = props.ALL_VECTOR_FRAMES
    else:
        role = props.CLIENT if target == "client" else props.SERVER
        selectors = range(len(props.PREFIX_NAMES[role]))
        frames = props.VECTOR_FRAMES[props.SERVER if target == "client" else props.CLIENT]
    seeds = []
    for selector in selectors:
        seeds += [bytes([selector, 0]) + frame for frame in frames]
        seeds.append(bytes([selector, 7]) + b"".join(frames[:8]))
    return seeds


# --------------------------------------------------------------------- atheris


def _run_atheris_child(target: str, corpus: Path, libfuzzer_args: list[str]) -> None:
    atheris = importlib.import_module("atheris")  # untyped, and optional: the fuzz extra

    with atheris.instrument_imports(include=["chatproto", "fuzz_properties"]):
        props = _import_properties()
    from chatproto import _fastcodec

    for index, seed in enumerate(seed_inputs(target, props)):
        (corpus / f"seed-{index:04d}").write_bytes(seed)

    # The body decoders are compiled from generated source at import, which
    # the import hook never sees: instrument them one by one.
    for decoder in _fastcodec.DECODERS.values():
        atheris.instrument_func(decoder)
    atheris.Setup([sys.argv[0], *libfuzzer_args, str(corpus)], input_checker(target, props))
    atheris.Fuzz()


def run_atheris(target: str, seconds: float, runs: int | None, workdir: Path,
                max_len: int) -> int:
    corpus, crashes = workdir / "corpus", workdir / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    args = [f"-max_total_time={max(1, round(seconds))}", f"-max_len={max_len}",
            "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
            f"-artifact_prefix={crashes}/"]
    if runs is not None:
        args.insert(0, f"-runs={runs}")
    log = workdir / "libfuzzer.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        status = subprocess.run(
            [sys.executable, __file__, "--child", target, str(corpus), "--", *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # a killed run still leaves its log
        ).returncode
    elapsed = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    found = sorted(set(crashes.iterdir()) - before)
    executions = _last_int(r"stat::number_of_executed_units: *(\d+)", text) \
        or _last_int(r"#(\d+)\s", text) or 0
    cov, ft = _last_int(r"cov: (\d+)", text), _last_int(r"ft: (\d+)", text)
    kept = _last_int(r"corp: (\d+)", text)
    slowest = _last_int(r"slowest_unit_time_sec: *(\d+)", text)
    rss = _last_int(r"peak_rss_mb: *(\d+)", text)
    print(f"fuzz target={target} engine=atheris seconds={elapsed:.0f} executions={executions} "
          f"({executions / max(elapsed, 1e-9):.0f}/s) coverage: cov={cov} ft={ft} "
          f"corpus={kept} slowest_input_s={slowest} peak_rss_mb={rss} crashes={len(found)} "
          f"log={log}")
    if status != 0 or found:
        traceback = text[text.find("=== Uncaught Python exception"):] if found else text[-2000:]
        print(traceback[:4000], file=sys.stderr)
        for path in found:
            print(f"crashing input: {path}", file=sys.stderr)
        return 1
    return 0


def _last_int(pattern: str, text: str) -> int | None:
    matches = re.findall(pattern, text)
    return int(matches[-1]) if matches else None


# ------------------------------------------------------------------ hypothesis


def run_hypothesis(target: str, seconds: float, runs: int | None) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    props = _import_properties()
    if target == "decoder":
        def draw(data: st.DataObject) -> None:
            props.draw_decoder_case(data)
    else:
        role = props.CLIENT if target == "client" else props.SERVER

        def draw(data: st.DataObject) -> None:
            props.draw_connection_case(role, data)

    executions = 0

    # A fresh random start for each batch, so the loop keeps exploring until time is up.
    @settings(max_examples=25, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def batch(data: st.DataObject) -> None:
        nonlocal executions
        executions += 1
        draw(data)

    started = time.monotonic()
    failed = False
    while time.monotonic() - started < seconds and (runs is None or executions < runs):
        try:
            batch()
        except Exception as exc:  # hypothesis has printed the shrunk input
            print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
            failed = True
            break
    elapsed = time.monotonic() - started
    print(f"fuzz target={target} engine=hypothesis seconds={elapsed:.0f} "
          f"executions={executions} ({executions / max(elapsed, 1e-9):.0f}/s) "
          f"crashes={int(failed)}")
    return 1 if failed else 0


# ------------------------------------------------------------------------ main


def _atheris_installed() -> bool:
    return importlib.util.find_spec("atheris") is not None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:  # the atheris process started by run_atheris
        _run_atheris_child(argv[1], Path(argv[2]), argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=TARGETS, required=True,
                        help="FrameDecoder, or a Connection in the client or server role")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="how long to fuzz (default 60)")
    parser.add_argument("--runs", type=int, default=None,
                        help="stop after this many inputs as well (default: no limit)")
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto",
                        help="auto: atheris if installed, else hypothesis (default auto)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="atheris: corpus, crashes and log (default artifacts/fuzz/TARGET)")
    parser.add_argument("--max-len", type=int, default=16384,
                        help="atheris: largest input in octets (default 16384)")
    parser.add_argument("--reproduce", type=Path, default=None, metavar="INPUT",
                        help="check one saved input (a crash file) without fuzzing, and exit")
    args = parser.parse_args(argv)
    if args.reproduce is not None:
        input_checker(args.target, _import_properties())(args.reproduce.read_bytes())
        print(f"{args.reproduce}: every property holds")
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _atheris_installed() else "hypothesis"
    if engine == "atheris":
        if not _atheris_installed():
            parser.error("atheris is not installed: pip install -e .[fuzz]")
        workdir = args.workdir or ROOT / "artifacts" / "fuzz" / args.target
        return run_atheris(args.target, args.seconds, args.runs, workdir, args.max_len)
    return run_hypothesis(args.target, args.seconds, args.runs)


if __name__ == "__main__":
    sys.exit(main())
