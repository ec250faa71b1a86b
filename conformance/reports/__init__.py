"""Reports of a conformance run: terminal, JUnit XML, JSON and self-contained HTML.

Every report names the kit version, the spec version and the target, and for a
failed case gives the requirement broken, what was expected and what arrived,
and the command that replays the case on its own.
"""
