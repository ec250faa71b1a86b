"""``chatproto-conformance``: the command line of the kit.

    chatproto-conformance server HOST:PORT [options]
    chatproto-conformance client [options] -- COMMAND ARGS...

Exit status: 0 when every MUST the selected cases check held, 1 when one was
broken (or a case was FLAKY), 2 when the kit could not run (bad usage, target
unreachable, client command that cannot start, a case ended in ERROR, or the
output was closed before the end, as by ``| head``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import conformance
from chatproto import DEFAULT_PORT, PROTOCOL_VERSION
from conformance.options import OPTIONS, KitOptions
from conformance.outcomes import Outcome
from conformance.registry import Case, all_cases, in_run_order, select
from conformance.reports import html_report, json_report, junit_report
from conformance.reports.terminal import TerminalReporter, cases_phrase
from conformance.runner import ContextFactory, RunReport, run_cases
from conformance.server_side import ServerContext

EXIT_OK, EXIT_FAILED, EXIT_KIT_ERROR = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatproto-conformance",
        description=f"Check a chatproto v{PROTOCOL_VERSION} server or client against the spec, "
                    "over the network.",
        epilog="Exit status: 0 every MUST held; 1 a MUST was broken (or a case was FLAKY); "
               "2 the kit could not run (usage, unreachable target, a client that cannot "
               "start, a case in ERROR, output closed early).",
    )
    parser.add_argument("--version", action="version",
                        version=f"chatproto-conformance {conformance.__version__} "
                                f"(spec v{PROTOCOL_VERSION})")
    suites = parser.add_subparsers(dest="suite", required=True,
                                   metavar="{server,client,requirements}")

    common = argparse.ArgumentParser(add_help=False)
    pick = common.add_argument_group("selecting cases")
    pick.add_argument("--list", action="store_true",
                      help="list the selected cases and the requirements they check, run nothing")
    pick.add_argument("-k", metavar="EXPRESSION",
                      help="only cases whose ID, title or requirements match, as pytest -k: "
                           "words with and/or/not")
    pick.add_argument("--case", action="append", metavar="ID", default=[],
                      help="only the case with this exact ID (repeatable); reports print it")
    run = common.add_argument_group("running")
    run.add_argument("--repeat", type=int, default=1, metavar="N",
                     help="run every case N times (the shutdown case once, after them); a case "
                          "whose verdict varies is FLAKY, one that could not always be "
                          "run is ERROR")
    groups = {"selecting cases": pick, "running": run}
    for option in OPTIONS:
        if option.group in groups:
            option.add_to(groups[option.group].add_argument)
    out = common.add_argument_group("reports")
    out.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    out.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    out.add_argument("--html", type=Path, metavar="FILE",
                     help="write a self-contained HTML report with every frame of failed cases")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="print only failures and the summary")

    server = suites.add_parser(
        "server", parents=[common], help="check a running server",
        description="The kit connects to HOST:PORT as clients and checks the server's answers.")
    server.add_argument("target", nargs="?", metavar="HOST:PORT",
                        help=f"the server under test (port defaults to {DEFAULT_PORT})")
    for option in OPTIONS:
        if option.group == "the server":
            option.add_to(server.add_argument)

    client = suites.add_parser(
        "client", parents=[common], help="check a client program",
        description="The kit plays the server on a fresh port per case and launches the "
                    "client command, with {host} and {port} replaced.")
    coverage = suites.add_parser(
        "requirements", help="list the spec's requirements and the cases that check each",
        description="Every requirement of the spec with its level and the cases citing it; "
                    "the few that no network test can observe say why.")
    coverage.add_argument("--req", action="append", metavar="PATTERN", default=[],
                          help="only requirements matching PATTERN (repeatable)")
    client.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS...",
                        help="the client to launch, after --; {host} and {port} are replaced")
    return parser


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, DEFAULT_PORT
    host = host.strip("[]")
    return host or "127.0.0.1", int(port)


def _replay_command(args: argparse.Namespace) -> list[str]:
    command = ["chatproto-conformance", args.suite]
    if args.suite == "server":
        command.append(args.target)
        if args.oper:
            command += ["--oper", args.oper]
        if args.shutdown_command:
            command += ["--shutdown-command", args.shutdown_command]
        if args.tls or args.cafile:
            command += ["--cafile", args.cafile] if args.cafile else ["--tls"]
    if args.timeout_scale != 1.0:
        command += ["--timeout-scale", str(args.timeout_scale)]
    command += ["--case", "{case}"]
    if args.suite == "client":
        command += ["--", *args.command]
    return command


def _selected(args: argparse.Namespace) -> tuple[list[Case], list[Case]]:
    """The cases to run, in run order, and those --skip-slow left out."""
    cases = select(all_cases(), suite=args.suite, requirement_patterns=args.req,
                   keyword=args.k)
    if args.case:
        wanted = set(args.case)
        cases = [c for c in cases if c.id in wanted]
    deselected = [c for c in cases if args.skip_slow and c.slow]
    return in_run_order([c for c in cases if c not in deselected]), deselected


def _list(cases: Sequence[Case], deselected: Sequence[Case]) -> None:
    for case in cases:
        flags = " (slow)" if case.slow else ""
        print(f"{case.id}{flags}\n    {', '.join(case.requirements)}: {case.title}")
    print(cases_phrase(len(cases), len(deselected)))


def _requirements(patterns: list[str]) -> int:
    from fnmatch import fnmatchcase

    from chatproto_spec.requirements import load_requirements
    from conformance.coverage import NOT_CHECKABLE, cases_by_requirement

    requirements = load_requirements()
    for req, cases in cases_by_requirement().items():
        if patterns and not any(fnmatchcase(req, p) for p in patterns):
            continue
        level = requirements[req].level.value
        if cases:
            where = ", ".join(c.id for c in cases)
        else:
            where = f"not checked: {NOT_CHECKABLE.get(req, 'no case yet')}"
        print(f"{req:<12} {level:<6} {where}")
    return EXIT_OK


def _startable(command: list[str]) -> str | None:
    """Why the client command cannot be started, or None when its program exists."""
    program = command[0]
    if shutil.which(program) is not None:
        return None
    if os.sep not in program:
        why = "no such program on PATH"
    elif not os.path.exists(program):
        why = "no such file"
    else:
        why = "not an executable file"
    return f"the client could not be started: {program}: {why}"


def _reachable(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; a reader that stops early (``| head``) ends it quietly, status 2."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        # What is still buffered must not be written (and fail again) at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_KIT_ERROR


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.suite == "requirements":
        return _requirements(args.req)
    try:
        cases, deselected = _selected(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.list:
        _list(cases, deselected)
        return EXIT_OK
    if args.repeat < 1 or args.timeout_scale <= 0:
        parser.error("--repeat must be at least 1 and --timeout-scale above 0")
    if not cases:
        print("chatproto-conformance: no case matches the selection", file=sys.stderr)
        return EXIT_KIT_ERROR

    if args.suite == "server":
        if not args.target:
            parser.error("the server suite needs HOST:PORT")
        try:
            host, port = _target(args.target)
        except ValueError:
            parser.error(f"not HOST:PORT: {args.target!r}")
        try:
            options = KitOptions.from_values(vars(args))
        except ValueError as exc:
            parser.error(str(exc))
        problem = _reachable(host, port, 3.0 * args.timeout_scale)
        if problem:
            print(f"chatproto-conformance: {problem}", file=sys.stderr)
            return EXIT_KIT_ERROR
        target = f"{host}:{port}"

        def make_context(case: Case, broken: dict[str, str]) -> ServerContext:
            return ServerContext(case, host, port, options, broken)

        factory: ContextFactory = make_context
    else:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("the client suite needs the client command after --")
        problem = _startable(command)
        if problem:
            print(f"chatproto-conformance: {problem}", file=sys.stderr)
            return EXIT_KIT_ERROR
        args.command = command
        from conformance.client_side import ClientContext

        options = KitOptions.from_values(vars(args))
        target = shlex.join(command)

        def make_client_context(case: Case, broken: dict[str, str]) -> ClientContext:
            return ClientContext(case, command, options, broken)

        factory = make_client_context

    reporter = TerminalReporter(sys.stdout, quiet=args.quiet)
    reporter.header(args.suite, target, len(cases), len(deselected))
    report = asyncio.run(run_cases(
        cases, factory, suite=args.suite, target=target,
        replay_command=_replay_command(args), repeat=args.repeat,
        timeout_scale=args.timeout_scale, deselected=[c.id for c in deselected],
        progress=reporter.progress))
    return _finish(report, args, reporter)


def _finish(report: RunReport, args: argparse.Namespace, reporter: TerminalReporter) -> int:
    reporter.summary(report)
    for path, write in ((args.junit, junit_report.write), (args.json, json_report.write),
                        (args.html, html_report.write)):
        if path is not None:
            write(report, path)
            print(f"wrote {path}")
    status = report.exit_status()
    if report.counts()[Outcome.ERROR] and status == EXIT_KIT_ERROR:
        print("chatproto-conformance: some cases could not be run (ERROR); see above",
              file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
