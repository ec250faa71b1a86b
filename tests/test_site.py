"""The published spec site: ``mkdocs build --strict`` over ``spec/`` with its hooks.

The site is built here as it is published, so a broken link, anchor or page
fails the suite. The tests then check what the hooks promise (spec/hooks.py):
the wire tables and vectors follow the live schema with no hand edit, every
requirement ID is an anchor and the requirements index lists them all with the
cases that check them, in the nav's order, and every page names the spec
version. The site fetches nothing from elsewhere (a lab without internet sees
all of it): a scan of the built pages finds no outside script, style, font or
image, and a headless Chromium (Debian's, driven by Playwright) opens the served
site with every request off 127.0.0.1 blocked and finds the state diagram drawn,
and field names and case IDs whole on a laptop and a phone. ``mike`` publishes
two versions into a throwaway git repository.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urljoin, urlsplit

import pytest
from schema_patch import retyped

from chatproto import ERROR_REGISTRY, MESSAGE_TYPES, PROTOCOL_VERSION, SPEC_REVISION, Limits
from chatproto._fields import UINT32
from chatproto._schema import Schema
from chatproto._state import State
from chatproto.messages import SendRoom
from chatproto_spec import _vectors
from chatproto_spec.requirements import load_requirements, spec_dir
from conformance.coverage import NOT_CHECKABLE, cases_by_requirement

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

ROOT = Path(__file__).resolve().parent.parent
MKDOCS_YML = ROOT / "mkdocs.yml"
SPEC_DIR = spec_dir()
ARTIFACTS = ROOT / "artifacts"
# Material prints an end-of-life banner unless this is set; it is not a build warning.
QUIET_ENV = {"NO_MKDOCS_2_WARNING": "1"}
VERSION_BADGE = (f'<p class="cp-spec-version">chatproto specification, '
                 f"<strong>version {SPEC_REVISION}</strong> "
                 f"(protocol version {PROTOCOL_VERSION})</p>")


def _page_html(site: Path, page: str) -> Path:
    """Where ``mkdocs`` (directory URLs) writes the page built from ``page`` (``a/b.md``)."""
    path = Path(page).with_suffix("")
    if path.name in ("index", "README"):
        return site / path.parent / "index.html"
    return site / path / "index.html"


def _section(html: str, heading_id: str) -> str:
    """The HTML from the heading with ``heading_id`` up to the next heading of any level."""
    start = html.index(f'id="{heading_id}"')
    end = re.compile(r"<h[1-6][ >]").search(html, start)
    return html[start:end.start() if end else len(html)]


class _PageParser(HTMLParser):
    """The ids of a page, and the rows of its tables (cell text and the links in each cell)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.rows: list[list[tuple[str, list[str]]]] = []
        self._cell: tuple[list[str], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ([], [])
        elif tag == "a" and self._cell is not None and attributes.get("href"):
            self._cell[1].append(str(attributes["href"]))
        elif tag == "br" and self._cell is not None:
            self._cell[0].append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(("".join(self._cell[0]).strip(), self._cell[1]))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0].append(data)


@functools.cache
def _parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _build_in_process(site_dir: Path, monkeypatch: pytest.MonkeyPatch,
                      docs_dir: Path | None = None, schema: Schema | None = None) -> None:
    """``mkdocs build --strict`` through MkDocs' Python API, in this process.

    ``schema`` replaces spec v1's as what the hooks render the pages from.
    """
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    # pymdownx.snippets' base_path is relative to the working directory.
    monkeypatch.chdir(ROOT)
    for name, value in QUIET_ENV.items():
        monkeypatch.setenv(name, value)
    overrides: dict[str, Any] = {"site_dir": str(site_dir), "strict": True}
    if docs_dir is not None:
        overrides["docs_dir"] = str(docs_dir)
    config = load_config(str(MKDOCS_YML), **overrides)
    if schema is not None:
        config["extra"]["chatproto_schema"] = schema  # hooks.SCHEMA_KEY
    build(config)


# ---------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site as ``mkdocs build --strict`` builds it from the working tree."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_YML),
         "--site-dir", str(out)],
        cwd=ROOT, env={**os.environ, **QUIET_ENV}, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def test_strict_build_writes_every_page(site: Path) -> None:
    pages = [path.relative_to(SPEC_DIR).as_posix() for path in SPEC_DIR.rglob("*.md")]
    for page in pages:  # requirements.md is checked in too
        assert _page_html(site, page).is_file(), page
    for name in ("messages.json", "invalid.json", "nickfold.json"):
        assert (site / "vectors" / name).is_file()
    assert (site / "search" / "search_index.json").is_file()


def test_a_broken_link_fails_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    from mkdocs.exceptions import Abort

    docs = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, docs, ignore=shutil.ignore_patterns("__pycache__"))
    page = docs / "framing.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [gone](no-such-page.md).\n",
                    encoding="utf-8")
    with pytest.raises(Abort, match="warnings"):
        _build_in_process(tmp_path / "site", monkeypatch, docs_dir=docs)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "no-such-page.md" in warnings[0], warnings


# ------------------------------------------------- generated from the schema


def test_a_schema_change_changes_the_site(site: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    checked_in = [SPEC_DIR / "messages.md", SPEC_DIR / "vectors" / "messages.json"]
    before = {path: path.read_bytes() for path in checked_in}
    schema = retyped(SendRoom, "client_msg_id", UINT32)
    patched = tmp_path / "site"
    _build_in_process(patched, monkeypatch, schema=schema)

    # Nobody edited the pages: they still say u64, the site says u32.
    assert {path: path.read_bytes() for path in checked_in} == before
    page = before[checked_in[0]].decode()
    block = page[page.index("<!-- generated:fields SEND_ROOM -->"):
                 page.index("<!-- /generated:fields SEND_ROOM -->")]
    assert "| `client_msg_id` | `u64` | 8 |" in block

    old_html = _page_html(site, "messages.md").read_text(encoding="utf-8")
    new_html = _page_html(patched, "messages.md").read_text(encoding="utf-8")
    old, new = _section(old_html, "send_room-0x0301"), _section(new_html, "send_room-0x0301")
    row = "<td><code>client_msg_id</code></td>\n<td><code>{}</code></td>\n<td>{}</td>"
    assert row.format("u64", 8) in old and row.format("u32", 4) in new
    assert row.format("u64", 8) not in new
    assert "<code>client_msg_id</code><span>u64 · 8 octets" in old
    assert "<code>client_msg_id</code><span>u32 · 4 octets" in new  # the layout diagram
    assert "length = 46" in old and "length = 42" in new  # the typical frame's hex dump
    # Only SEND_ROOM moved: the message declared next to it is untouched.
    assert (_section(old_html, "send_private-0x0302")
            == _section(new_html, "send_private-0x0302"))

    def send_room(site_dir: Path) -> dict[str, Any]:
        vectors = json.loads((site_dir / "vectors" / "messages.json").read_text("utf-8"))
        return next(m for m in vectors["messages"] if m["name"] == "SEND_ROOM")

    old_vector, new_vector = send_room(site), send_room(patched)
    assert {f["name"]: f["wire"] for f in old_vector["fields"]}["client_msg_id"] == "u64"
    assert {f["name"]: f["wire"] for f in new_vector["fields"]}["client_msg_id"] == "u32"
    old_typical, new_typical = old_vector["cases"][0], new_vector["cases"][0]
    assert old_typical["case"] == new_typical["case"] == "typical"
    assert new_typical["length"] == old_typical["length"] - 4
    assert (bytes.fromhex(new_typical["hex"])
            == _vectors.message_case(SendRoom, "typical", schema).frame)


# -------------------------------------------------------------- requirements


def test_every_requirement_is_an_anchor_on_its_page(site: Path) -> None:
    requirements = load_requirements()
    assert requirements
    for req in requirements.values():
        assert req.id in _parse(_page_html(site, req.page)).ids, f"{req.id} on {req.page}"


class _IndexParser(HTMLParser):
    """The requirements index: its page headings and entries, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.entries: list[dict[str, Any]] = []
        self._open: list[str] = []  # the class of each open div of the current entry
        self._into: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        css = attributes.get("class", "").split()
        if tag == "h2":
            self.headings.append("")
            self._into = "heading"
        elif tag == "div" and "cp-index-entry" in css:
            self.entries.append({"id": attributes.get("id"), "links": [], "level": "",
                                 "text": "", "cases": [], "checked": ""})
            self._open = ["entry"]
        elif tag == "div" and self._open:
            self._open.append(" ".join(css))
        elif self._open:
            entry = self.entries[-1]
            if tag == "a" and self._into is None:
                entry["links"].append(attributes.get("href"))
            if tag == "span" and "cp-level" in css:
                self._into = "level"
            elif tag == "p" and "cp-index-head" not in css:
                self._into = "text"
            elif tag == "code" and self._open[-1] == "cp-index-cases":
                entry["cases"].append("")
                self._into = "case"

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._open:
            self._open.pop()
        elif (tag, self._into) in {("h2", "heading"), ("span", "level"), ("p", "text"),
                                   ("code", "case")}:
            self._into = None

    def handle_data(self, data: str) -> None:
        if self._into == "heading":
            self.headings[-1] += data
        elif self._open:
            entry = self.entries[-1]
            if self._into == "case":
                entry["cases"][-1] += data
            elif self._into in ("level", "text"):
                entry[self._into] += data
            if self._open[-1] == "cp-index-cases":
                entry["checked"] += data


def _index(site: Path) -> _IndexParser:
    parser = _IndexParser()
    parser.feed(_page_html(site, "requirements.md").read_text(encoding="utf-8"))
    return parser


def _nav(nav: Any) -> list[tuple[str, str]]:
    """(title, page) of mkdocs.yml's nav, in its order."""
    found: list[tuple[str, str]] = []
    for item in nav:
        for title, target in item.items():
            found += _nav(target) if isinstance(target, list) else [(title, target)]
    return found


def test_requirements_index_lists_every_requirement(site: Path) -> None:
    index_url = "http://site/requirements/"
    entries = {entry["id"]: entry for entry in _index(site).entries}
    requirements = load_requirements()
    covered = cases_by_requirement()
    assert set(entries) == set(requirements)
    for req in requirements.values():
        entry = entries[req.id]
        assert entry["level"] == req.level.value, req.id
        assert entry["text"].strip(), req.id
        # The ID links to the requirement: its page was built and holds that id.
        assert len(entry["links"]) == 1, req.id
        target = urlsplit(urljoin(index_url, entry["links"][0]))
        page = site / unquote(target.path).lstrip("/") / "index.html"
        assert target.fragment == req.id and req.id in _parse(page).ids, entry["links"][0]
        checked = " ".join(entry["checked"].split())
        cases = [case.id for case in covered[req.id]]
        if cases:
            assert entry["cases"] == cases, req.id
        elif req.id in NOT_CHECKABLE:
            assert checked.startswith("Checked by not checkable over the network"), req.id
        else:
            assert checked == "Checked by no case", req.id


def test_requirements_index_follows_the_nav_then_each_page(site: Path) -> None:
    from mkdocs.config import load_config

    expected: list[str] = []
    titles: list[str] = []
    for title, page in _nav(load_config(str(MKDOCS_YML))["nav"]):
        if page == "requirements.md":
            continue
        # The requirement anchors of the built page, in the order they stand on it.
        html = _page_html(site, page).read_text(encoding="utf-8")
        ids = list(dict.fromkeys(re.findall(r'id="(CP-[A-Z]+-\d+)"', html)))
        expected += ids
        titles += [title] if ids else []
    index = _index(site)
    assert [entry["id"] for entry in index.entries] == expected
    assert [heading.rstrip("¶").strip() for heading in index.headings] == titles  # no permalink
    assert sorted(expected) != expected  # the nav's order is not the files' names


def test_checked_in_requirements_index_is_fresh() -> None:
    """spec/requirements.md is what specgen writes from the pages, in mkdocs.yml's nav order."""
    from chatproto_spec import _requirements_index, specgen

    page = SPEC_DIR / "requirements.md"
    assert page.read_text(encoding="utf-8") == specgen.generate(SPEC_DIR)[page], (
        "spec/requirements.md is out of date: run python -m chatproto_spec.specgen")
    text = page.read_text(encoding="utf-8")
    listed = re.findall(r"^- \[(CP-[A-Z]+-\d+)\]\(([a-z-]+\.md)#\1\) \*\*(MUST|SHOULD|MAY)\*\*: ",
                        text, re.MULTILINE)
    requirements = load_requirements()
    assert [rid for rid, _, _ in listed] == [
        req.id for section in _requirements_index.index_sections(
            {p.name: p.read_text(encoding="utf-8") for p in SPEC_DIR.glob("*.md")},
            _requirements_index.site_nav(SPEC_DIR))
        for req in section.requirements]
    assert {rid: (page, level) for rid, page, level in listed} == {
        rid: (req.page, req.level.value) for rid, req in requirements.items()}
    # In the nav's order, not the files' names.
    assert text.index("## Transport and framing") < text.index("## Connection lifecycle")


def test_stale_requirements_index_is_found_by_specgen_check(tmp_path: Path) -> None:
    import shutil

    from chatproto_spec import specgen

    spec = tmp_path / "spec"
    shutil.copytree(SPEC_DIR, spec, ignore=shutil.ignore_patterns("__pycache__"))
    assert specgen.main(["--spec-dir", str(spec)]) == 0
    framing = spec / "framing.md"
    framing.write_text(framing.read_text(encoding="utf-8").replace(
        "**CP-FRAME-2** A sender MUST", "**CP-FRAME-2** A sender SHOULD"), encoding="utf-8")
    assert spec / "requirements.md" in specgen.out_of_date(spec)


def test_requirements_index_takes_its_order_from_the_nav() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("site_hooks", SPEC_DIR / "hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    nav = [{"Errors": "errors.md"}, {"Both": [{"Limits": "limits.md"},
                                              {"Framing": "framing.md"}]}]
    text = hooks.render_requirements_index(SPEC_DIR, nav)
    headings = re.findall(r"^## (.*)$", text, re.MULTILINE)
    assert headings[:3] == ["Errors", "Limits", "Framing"]
    listed = re.findall(r'class="cp-index-entry" id="(CP-[A-Z]+-\d+)"', text)
    by_page = [req.id for page in ("errors.md", "limits.md", "framing.md")
               for req in load_requirements().values() if req.page == page]
    assert listed[:len(by_page)] == by_page
    # The pages the nav leaves out come last, still listed.
    assert set(listed) == set(load_requirements())


def test_every_page_shows_the_spec_version(site: Path) -> None:
    pages = [path.relative_to(SPEC_DIR).as_posix() for path in SPEC_DIR.rglob("*.md")]
    for page in pages:  # requirements.md is checked in too
        html = _page_html(site, page).read_text(encoding="utf-8")
        assert html.count(VERSION_BADGE) == 1, page


def test_changelog_has_an_entry_per_version_that_matches_the_code() -> None:
    """The newest entry (Unreleased while there is one) states what the code has now;
    a released version's entry keeps the figures it was published with."""
    text = (SPEC_DIR / "changelog.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## Version (\d+(?:\.\d+)?)$", text, re.MULTILINE)
    # Newest first: this revision, then every earlier one down to version 1.
    assert headings[0] == SPEC_REVISION and headings[-1] == "1"
    assert headings == sorted(headings, key=lambda v: tuple(map(int, v.split("."))),
                              reverse=True)
    newest = "## Unreleased" if "\n## Unreleased" in text else f"## Version {SPEC_REVISION}\n"
    entry = text.split(newest)[1].split("\n## ")[0]
    entry = " ".join(entry.split())
    requirements = load_requirements().values()
    in_force = [req for req in requirements if not req.retired]
    levels = Counter(req.level.value for req in in_force)
    for stated, actual in [
        (r"(\d+) message types", len(MESSAGE_TYPES)),
        (r"(\d+) error codes", len(ERROR_REGISTRY)),
        (r"(\d+) advertised limits", len(Limits.model_fields)),
        (r"(\d+) numbered requirements in force", len(in_force)),
        (r"(\d+) retired", len(requirements) - len(in_force)),
        (r"(\d+) MUST", levels["MUST"]),
        (r"(\d+) SHOULD", levels["SHOULD"]),
        (r"(\d+) MAY", levels["MAY"]),
    ]:
        match = re.search(stated, entry)
        assert match and int(match.group(1)) == actual, (stated, actual)


# ------------------------------------------------------------------ offline


class _ResourceParser(HTMLParser):
    """Every URL a page makes the browser fetch by itself (not the links a reader follows)."""

    FETCHED: ClassVar[dict[str, tuple[str, ...]]] = {
        "script": ("src",), "link": ("href",), "img": ("src", "srcset"),
        "source": ("src", "srcset"), "iframe": ("src",), "embed": ("src",), "object": ("data",),
        "video": ("src", "poster"), "audio": ("src",), "track": ("src",),
        "image": ("href", "xlink:href"), "use": ("href", "xlink:href"), "input": ("src",)}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.classes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in self.FETCHED.get(tag, ()):
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()] \
                    if name == "srcset" else [value]
            elif name == "style":
                self.urls += _css_urls(value)
            elif name == "class":
                self.classes.update(value.split())

    def handle_data(self, data: str) -> None:
        if self.lasttag == "style":
            self.urls += _css_urls(data)


def _css_urls(css: str) -> list[str]:
    return [m.group(1) or m.group(2) for m in
            re.finditer(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""", css)]


def _external(url: str) -> bool:
    """A URL off this site: with a scheme other than data: or blob:, or protocol-relative."""
    has_scheme = re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", url) is not None
    return url.startswith("//") or (has_scheme and not url.startswith(("data:", "blob:")))


def test_the_built_site_fetches_nothing_from_elsewhere(site: Path) -> None:
    """A lab without internet sees the whole site: no script, style, font or image off it."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    external: list[str] = []
    for page in pages:
        parser = _ResourceParser()
        parser.feed(page.read_text(encoding="utf-8"))
        external += [f"{page.relative_to(site)}: {url}" for url in parser.urls if _external(url)]
        # Material fetches Mermaid from a CDN for any element of this class.
        assert "mermaid" not in parser.classes, page
    for sheet in sorted(site.rglob("*.css")):
        external += [f"{sheet.relative_to(site)}: {url}"
                     for url in _css_urls(sheet.read_text(encoding="utf-8")) if _external(url)]
    assert external == []


def test_the_state_diagram_is_drawn_at_build_time(site: Path) -> None:
    """The page's Mermaid source (for readers of the Markdown) becomes an inline SVG."""
    assert "```mermaid" in (SPEC_DIR / "lifecycle.md").read_text(encoding="utf-8")
    html = _page_html(site, "lifecycle.md").read_text(encoding="utf-8")
    figure = html[html.index('<figure class="cp-state-diagram">'):]
    figure = figure[:figure.index("</figure>")]
    assert figure.count('<svg xmlns="http://www.w3.org/2000/svg" class="cp-sd"') == 1
    for state in State:
        assert f'text-anchor="middle" fill="currentColor">{state.value}</text>' in figure
    assert "stateDiagram" not in html and "<script" not in figure


def test_the_resource_scan_sees_external_references() -> None:
    parser = _ResourceParser()
    parser.feed('<link rel="stylesheet" href="https://fonts.example/a.css">'
                '<script src="//cdn.example/x.js"></script><img srcset="a.png 1x, http://e/b 2x">'
                '<a href="https://example.org/">a link is not fetched</a>'
                '<div style="background: url(\'https://e/c.png\')"></div>'
                '<style>@import "https://e/d.css";</style><img src="data:image/png;base64,AA">')
    assert [url for url in parser.urls if _external(url)] == [
        "https://fonts.example/a.css", "//cdn.example/x.js", "http://e/b", "https://e/c.png",
        "https://e/d.css"]


# ------------------------------------------------------------------- browser


CHROMIUM_ENV = "CHATPROTO_CHROMIUM"
CHROMIUM_HINT = (
    "The site's browser test needs Chromium. On Debian or Ubuntu: "
    "`sudo apt-get install chromium` (the test does this itself when it runs as root); "
    f"elsewhere set {CHROMIUM_ENV} to a Chromium or Chrome binary.")
APT_TIMEOUT_S = {"update": 150, "install": 360}
CHROMIUM_ARGS = [
    # Chromium's own background traffic (updates, sync, field trials) is not
    # the site's: keep it off so that the route below sees only the page.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-gpu", "--disable-quic",
]
NARROW: ViewportSize = {"width": 390, "height": 844}
"""A phone's viewport."""
WIDE: ViewportSize = {"width": 1280, "height": 900}
"""A laptop's."""
# The texts of the elements in ``selector`` that the browser laid out on more than one line
# (a range has one rectangle per line it spans, inline or not).
BROKEN_ACROSS_LINES = """selector => [...document.querySelectorAll(selector)].filter(element => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size !== 1;
}).map(element => element.textContent)"""
# Pairs of the state diagram's texts and boxes whose drawn areas overlap.
OVERLAPS = """() => {
    const boxes = [...document.querySelectorAll('svg.cp-sd text, svg.cp-sd rect.cp-sd-state')]
        .map(element => [element.textContent || element.nextElementSibling.textContent,
                         element.tagName, element.getBBox()]);
    const hits = [];
    for (const [i, [a, tagA, p]] of boxes.entries()) {
        for (const [b, tagB, q] of boxes.slice(i + 1)) {
            if (tagA === 'rect' && tagB === 'text' && a === b) continue;  // a state's own name
            if (p.x < q.x + q.width && q.x < p.x + p.width && p.y < q.y + q.height
                && q.y < p.y + p.height) hits.push(a + ' / ' + b);
        }
    }
    return hits;
}"""
# The contrast ratio (WCAG) of the state names drawn over the page's background.
NAME_CONTRAST = """() => {
    const rgba = text => text.match(/[\\d.]+/g).map(Number);
    const luminance = ([r, g, b]) => [r, g, b].map(c => c / 255)
        .map(c => c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)
        .reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
    const back = rgba(getComputedStyle(document.body).backgroundColor);
    const name = document.querySelector('svg.cp-sd .cp-sd-name');
    const [r, g, b, a = 1] = rgba(getComputedStyle(name).fill);
    const fore = [r, g, b].map((c, i) => c * a + back[i] * (1 - a));
    const [hi, lo] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
}"""


def _find_chromium() -> str | None:
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _install_chromium() -> str:
    """Debian's chromium, installed with apt-get when running as root."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        pytest.fail(f"No Chromium found. {CHROMIUM_HINT}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step, command in (("update", ["apt-get", "update"]),
                          ("install", ["apt-get", "install", "-y", "chromium"])):
        try:
            subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=APT_TIMEOUT_S[step], check=True)
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"`{' '.join(command)}` failed: {exc.stderr[-2000:]}\n{CHROMIUM_HINT}")
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` took over {APT_TIMEOUT_S[step]} s. "
                        f"{CHROMIUM_HINT}")
    found = _find_chromium()
    if found is None:
        pytest.fail(f"apt-get installed chromium but no binary was found. {CHROMIUM_HINT}")
    return found


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served_site(site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _hex_dump_bytes(text: str) -> bytes:
    """The octets of a hex dump block: the hex pairs at the start of each line."""
    pairs = re.findall(r"^((?:[0-9a-f]{2} ?)+)", text, re.MULTILINE)
    return bytes.fromhex("".join(pairs).replace(" ", ""))


@pytest.mark.timeout(600)  # room for apt-get when Chromium is missing
def test_site_in_a_browser(served_site: str) -> None:
    from playwright.sync_api import Request, Route, expect, sync_playwright

    chromium = _find_chromium() or _install_chromium()
    attempted_external: list[str] = []
    page_errors: list[str] = []

    def only_loopback(route: Route, request: Request) -> None:
        if request.url.startswith(served_site):
            route.continue_()
        else:
            attempted_external.append(request.url)
            route.abort("blockedbyclient")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=WIDE,
                                          color_scheme="light", service_workers="block")
            context.route("**/*", only_loopback)
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(served_site + "messages/")
            page.wait_for_load_state("networkidle")

            # The version badge and the field tables: the index, then one per message.
            expect(page.locator(".cp-spec-version")).to_have_text(
                f"chatproto specification, version {SPEC_REVISION} "
                f"(protocol version {PROTOCOL_VERSION})")
            tables = page.locator("article table")
            expect(tables).to_have_count(len(MESSAGE_TYPES) + 1)
            for index in range(tables.count()):
                expect(tables.nth(index)).to_be_visible()
            send_room = page.locator("//h3[@id='send_room-0x0301']/following::table[1]")
            expect(send_room.locator("thead")).to_contain_text("Wire type")
            expect(send_room.locator("tbody tr")).to_have_count(6)
            expect(send_room).to_contain_text("client_msg_id")

            # The byte-layout diagram: one box per header field, prefix and field.
            layout = page.get_by_role("img", name="byte layout of SEND_ROOM")
            expect(layout).to_be_visible()
            expect(layout.locator(".cp-box")).to_have_count(8)
            box = layout.bounding_box()
            assert box is not None and box["width"] > 400 and box["height"] > 20, box

            # The typical frame's hex dump, byte for byte the vector.
            dump = page.locator(
                "//h3[@id='send_room-0x0301']/following::pre[contains(., 'type = 769')][1]")
            expect(dump).to_be_visible()
            assert _hex_dump_bytes(dump.inner_text()) == \
                _vectors.message_case(SendRoom, "typical").frame

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "site-messages.png"), full_page=True)

            # Search finds a message type and links to its section.
            page.locator("input.md-search__input").click()
            page.locator("input.md-search__input").press_sequentially("SEND_PRIVATE")
            hit = page.locator(".md-search-result__item a[href*='messages/']",
                               has_text="SEND_PRIVATE").first
            expect(hit).to_be_visible(timeout=15_000)
            hit.click()
            page.wait_for_url(re.compile(r"/messages/(\?[^#]*)?#send_private-0x0302$"))
            expect(page.locator("#send_private-0x0302")).to_be_in_viewport()

            # The palette toggle switches to dark and back.
            body = page.locator("body")
            expect(body).to_have_attribute("data-md-color-scheme", "default")
            page.get_by_title("Switch to dark mode").click()
            expect(body).to_have_attribute("data-md-color-scheme", "slate")
            page.get_by_title("Switch to light mode").click()
            expect(body).to_have_attribute("data-md-color-scheme", "default")
            assert attempted_external == [], attempted_external
            assert page_errors == [], page_errors

            # Field names and states are whole words, at a laptop's width and a phone's.
            for viewport in (None, NARROW):
                if viewport:
                    page.set_viewport_size(viewport)
                page.goto(served_site + "messages/")
                names = "article td:first-child > code"
                assert page.locator(names).count() > 3 * len(MESSAGE_TYPES)
                assert page.evaluate(BROKEN_ACROSS_LINES, names) == []
                if viewport:
                    welcome = page.locator("//h3[@id='welcome-0x0002']/following::table[1]")
                    welcome.scroll_into_view_if_needed()
                    page.screenshot(path=str(ARTIFACTS / "site-messages-narrow.png"))
                page.goto(served_site + "lifecycle/")
                assert page.evaluate(BROKEN_ACROSS_LINES, "article td > code") == []
            page.set_viewport_size(WIDE)

            # The requirements index: case IDs whole, each entry as wide as the text.
            for viewport in (None, NARROW):
                if viewport:
                    page.set_viewport_size(viewport)
                page.goto(served_site + "requirements/")
                cases = page.locator(".cp-index-cases code")
                assert cases.count() > len(load_requirements())
                assert page.evaluate(BROKEN_ACROSS_LINES, ".cp-index-cases code") == []
                # Nothing makes the page itself wider than the screen.
                assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
                entry = page.locator(".cp-index-entry").first.bounding_box()
                article = page.locator("article").bounding_box()
                assert entry and article and entry["width"] > 0.9 * article["width"], entry
                page.screenshot(path=str(ARTIFACTS / ("site-requirements-narrow.png" if viewport
                                                      else "site-requirements.png")))
            page.set_viewport_size(WIDE)

            # The state diagram is drawn, from the page alone: an SVG naming every state,
            # no Mermaid source, nothing asked of the network.
            page.goto(served_site + "lifecycle/")
            page.wait_for_load_state("networkidle")
            diagram = page.get_by_role("img", name=re.compile("^Connection state diagram"))
            expect(diagram).to_be_visible()
            drawn = diagram.locator("text.cp-sd-name")
            expect(drawn).to_have_text([state.value for state in State])
            box = diagram.bounding_box()
            assert box is not None and box["width"] > 500 and box["height"] > 300, box
            assert page.locator("pre", has_text="stateDiagram").count() == 0
            assert page.locator(".mermaid").count() == 0
            assert page.evaluate(OVERLAPS) == []
            figure = page.locator("figure.cp-state-diagram")
            figure.scroll_into_view_if_needed()
            for scheme, title in (("default", None), ("slate", "Switch to dark mode")):
                if title:
                    page.get_by_title(title).click()
                expect(body).to_have_attribute("data-md-color-scheme", scheme)
                assert page.evaluate(NAME_CONTRAST) >= 4.5, scheme
                figure.screenshot(path=str(ARTIFACTS / f"site-state-diagram-{scheme}.png"))
            page.get_by_title("Switch to light mode").click()
            page.screenshot(path=str(ARTIFACTS / "site-lifecycle.png"), full_page=True)
            assert attempted_external == [], attempted_external
            assert page_errors == [], page_errors
        finally:
            browser.close()


# ---------------------------------------------------------------- publishing


def test_mike_publishes_latest_and_dev(tmp_path: Path) -> None:
    """Two versions with ``mike``, in a throwaway repository that has no remote."""
    git = shutil.which("git")
    if git is None:
        pytest.fail("mike publishes through git, and no git binary was found")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(MKDOCS_YML, repo / "mkdocs.yml")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    shutil.copytree(SPEC_DIR, repo / "spec", ignore=shutil.ignore_patterns("__pycache__"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(QUIET_ENV, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1",
               GIT_CEILING_DIRECTORIES=str(tmp_path),
               GIT_AUTHOR_NAME="site test", GIT_AUTHOR_EMAIL="site-test@localhost",
               GIT_COMMITTER_NAME="site test", GIT_COMMITTER_EMAIL="site-test@localhost",
               # mike runs `mkdocs`, which sits beside this interpreter's mike.
               PATH=os.pathsep.join([sysconfig.get_path("scripts"), env.get("PATH", "")]))
    mike = shutil.which("mike", path=sysconfig.get_path("scripts")) or shutil.which("mike")
    assert mike is not None, "mike is part of the dev extra: pip install -e '.[dev]'"

    def run(*command: str) -> str:
        result = subprocess.run(command, cwd=repo, env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=100)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        return result.stdout

    run(git, "init", "--quiet", "--initial-branch", "main")
    run(git, "add", "--all")
    run(git, "commit", "--quiet", "--message", "spec")
    source = run(git, "rev-parse", "main")

    run(mike, "deploy", "--update-aliases", SPEC_REVISION, "latest")
    run(mike, "deploy", "dev")
    run(mike, "set-default", "latest")

    versions = json.loads(run(git, "show", "gh-pages:versions.json"))
    assert {v["version"]: v["aliases"] for v in versions} == {SPEC_REVISION: ["latest"], "dev": []}
    assert json.loads(run(mike, "list", "--json")) == versions
    published = set(run(git, "ls-tree", "-r", "--name-only", "gh-pages").split())
    for version in (SPEC_REVISION, "dev"):
        assert {f"{version}/messages/index.html", f"{version}/requirements/index.html",
                f"{version}/vectors/messages.json"} <= published
    assert "latest" in published  # a symlink to the released version
    assert "latest/" in run(git, "show", "gh-pages:index.html")  # the default version
    badge = run(git, "show", f"gh-pages:{SPEC_REVISION}/messages/index.html")
    assert VERSION_BADGE in badge
    # Nothing else moved: the source branch, the working tree, and no remote to push to.
    assert run(git, "rev-parse", "main") == source
    assert run(git, "status", "--porcelain") == ""
    assert run(git, "remote") == ""
