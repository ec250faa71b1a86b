"""The state diagram drawn from the state table (``spec/chatproto_spec/_statediagram.py``).

The drawing is checked as data: it is well-formed SVG and the same on every run;
each state is a box with its name; the arrows join exactly the pairs of states
the table joins, each starting and ending on the right boxes, with the labels
the Mermaid source uses; the transitions every live state shares are drawn once,
from the dashed box; a changed table changes the drawing; and no text covers
another text or a box (by the renderer's own width estimate; the site's browser
test measures what a browser draws).
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from chatproto._schema import TRANSITIONS
from chatproto._state import ERROR_FATAL, State
from chatproto.messages import Sender
from chatproto_spec import _specdoc, _statediagram

SVG = "{http://www.w3.org/2000/svg}"
Box = tuple[float, float, float, float]
"""x, y, width, height."""


def _draw(table: Mapping[tuple[State, Sender, str], State] | None = None) -> ET.Element:
    return ET.fromstring(_statediagram.render_state_svg(transitions=table))


def _classes(element: ET.Element) -> list[str]:
    return element.get("class", "").split()


def _rect(element: ET.Element) -> Box:
    x, y, width, height = (float(element.get(k, "0")) for k in ("x", "y", "width", "height"))
    return x, y, width, height


def _boxes(svg: ET.Element) -> dict[str, Box]:
    """Each state's box, by the name drawn in it."""
    return {text.text or "": _rect(rect) for rect, text in itertools.pairwise(svg)
            if "cp-sd-state" in _classes(rect) and "cp-sd-name" in _classes(text)}


def _group_box(svg: ET.Element) -> Box | None:
    rects = [r for r in svg.iter(f"{SVG}rect") if "cp-sd-group" in _classes(r)]
    assert len(rects) <= 1
    return _rect(rects[0]) if rects else None


def _path_ends(d: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """The first and last point of a path written as the renderer writes them."""
    x = y = 0.0
    first: tuple[float, float] | None = None
    for token in d.split():
        command, values = (token[0], token[1:]) if token[0].isalpha() else ("", token)
        if command == "H":
            x = float(values)
        elif command == "V":
            y = float(values)
        else:
            x, y = (float(v) for v in values.split(","))
        first = first or (x, y)
    assert first is not None
    return first, (x, y)


def _on_border(point: tuple[float, float], box: Box, slack: float = 1.0) -> bool:
    x, y = point
    left, top, width, height = box
    inside = left - slack <= x <= left + width + slack and top - slack <= y <= top + height + slack
    deep = left + slack < x < left + width - slack and top + slack < y < top + height - slack
    return inside and not deep


def _transitions(svg: ET.Element) -> list[tuple[list[str], str, list[str], str]]:
    """(sources, target, label lines, path) of each drawn transition."""
    found = []
    for group in svg.iter(f"{SVG}g"):
        if "cp-sd-transition" not in _classes(group):
            continue
        paths = list(group.iter(f"{SVG}path"))
        assert len(paths) == 1
        lines = [span.text or "" for span in group.iter(f"{SVG}tspan")]
        found.append((group.get("data-from", "").split(), group.get("data-to", ""), lines,
                      paths[0].get("d", "")))
    return found


def _shared_keys(table: Mapping[tuple[State, Sender, str], State]) -> set[tuple[Sender, str]]:
    """The (sender, message) pairs every live state has, to the first state with no way out."""
    live = [s for s in State if any(src is s for (src, _, _) in table)]
    target = next(s for s in State if s not in live)
    return {(sender, key) for (_, sender, key) in table
            if all(table.get((state, sender, key)) is target for state in live)}


def _check(svg: ET.Element, table: Mapping[tuple[State, Sender, str], State]) -> None:
    boxes = _boxes(svg)
    assert list(boxes) == [s.value for s in State if any(src is s for (src, _, _) in table)] \
        + [s.value for s in State if not any(src is s for (src, _, _) in table)]
    drawn = _transitions(svg)
    pairs = {(source, target) for sources, target, _, _ in drawn for source in sources}
    assert pairs == {(state.value, after.value) for (state, _, _), after in table.items()}
    shared = _shared_keys(table)
    rest = {k: v for k, v in table.items() if (k[1], k[2]) not in shared}
    expected = {(state.value, after.value): labels
                for (state, after), labels in _specdoc.state_edges(rest).items()}
    group = _group_box(svg)
    for sources, target, lines, d in drawn:
        start, end = _path_ends(d)
        assert _on_border(end, boxes[target]), (sources, target, end)
        if len(sources) == 1:
            assert lines == expected.pop((sources[0], target))
            assert _on_border(start, boxes[sources[0]]), (sources, target, start)
        else:
            # Drawn once, from the dashed box around every live state.
            assert group is not None and _on_border(start, group)
            assert sources == [s for s in boxes if any(src == s for (src, _) in pairs)]
            for state in sources:
                assert all(table[(State(state), sender, key)] == State(target)
                           for sender, key in shared)
    assert expected == {}
    assert (group is not None) == bool(shared)


def _text_boxes(svg: ET.Element) -> list[tuple[str, Box]]:
    """Where each text and state box lies, by the renderer's width estimate."""
    placed: list[tuple[str, Box]] = []
    for text in svg.iter(f"{SVG}text"):
        spans = list(text.iter(f"{SVG}tspan")) or [text]
        for span in spans:
            content = span.text or ""
            em = _statediagram.MONO_EM if "cp-sd-name" in _classes(text) else _statediagram.CHAR_EM
            width = _statediagram._text_width(content, em)
            x = float(span.get("x", "0"))
            anchor = text.get("text-anchor", "start")
            left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
            baseline = float(span.get("y", "0"))
            placed.append((content, (left, baseline - _statediagram.FONT_PX,
                                     width, _statediagram.FONT_PX + 3.0)))
    return placed


def _overlaps(svg: ET.Element) -> list[str]:
    boxes = [(name, box) for name, box in _boxes(svg).items()]
    texts = _text_boxes(svg)
    hits = []
    for i, (a, p) in enumerate(texts):
        for b, q in [*texts[i + 1:], *boxes]:
            if a == b and (b, q) in boxes:
                continue  # a state's own name in its box
            if p[0] < q[0] + q[2] and q[0] < p[0] + p[2] and p[1] < q[1] + q[3] \
                    and q[1] < p[1] + p[3]:
                hits.append(f"{a} / {b}")
    return hits


# ------------------------------------------------------------------ the drawing


def test_the_drawing_is_svg_and_the_same_every_time() -> None:
    text = _statediagram.render_state_svg()
    assert text == _statediagram.render_state_svg()
    svg = ET.fromstring(text)
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img"
    title = svg.find(f"{SVG}title")
    assert title is not None and all(state.value in (title.text or "") for state in State)
    assert "<script" not in text and "http" not in text.replace(SVG[1:-1], "")


def test_the_drawing_shows_the_state_table() -> None:
    svg = _draw()
    _check(svg, TRANSITIONS)
    shared = [labels for sources, _, labels, _ in _transitions(svg) if len(sources) > 1]
    assert shared == [["C or S ▸ ERROR (fatal)"]]
    assert ["C ▸ PONG or any request but HELLO and QUIT",
            "S ▸ any message but WELCOME, ERROR (fatal) and BYE"] in \
        [labels for sources, target, labels, _ in _transitions(svg) if sources == [target]]


def test_no_text_covers_another_or_a_box() -> None:
    svg = _draw()
    assert len(_text_boxes(svg)) > 2 * len(State)
    assert _overlaps(svg) == []


def test_the_overlap_check_sees_an_overlap() -> None:
    svg = _draw()
    label = next(t for t in svg.iter(f"{SVG}tspan"))
    name = next(t for t in svg.iter(f"{SVG}text") if "cp-sd-name" in _classes(t))
    label.set("x", "0")
    label.set("y", name.get("y", "0"))
    assert _overlaps(svg)


# ------------------------------------------------------------ other tables


def test_transitions_that_skip_states_run_in_lanes() -> None:
    table = {**TRANSITIONS,
             (State.READY, Sender.SERVER, "WELCOME"): State.AWAIT_HELLO,
             (State.AWAIT_HELLO, Sender.CLIENT, "PING"): State.READY}
    svg = _draw(table)
    _check(svg, table)
    assert _overlaps(svg) == []
    labels = [lines for sources, target, lines, _ in _transitions(svg)]
    assert ["S ▸ WELCOME"] in labels and ["C ▸ PING"] in labels


def test_without_a_shared_transition_there_is_no_dashed_box() -> None:
    table = {key: after for key, after in TRANSITIONS.items()
             if key != (State.AWAIT_WELCOME, Sender.CLIENT, ERROR_FATAL)}
    svg = _draw(table)
    _check(svg, table)  # the server's fatal ERROR is still shared; the client's is per state
    assert _overlaps(svg) == []
    table = {key: after for key, after in table.items()
             if key != (State.READY, Sender.SERVER, ERROR_FATAL)}
    svg = _draw(table)
    _check(svg, table)
    assert _group_box(svg) is None
    assert _overlaps(svg) == []
