"""The connection state machine drawn as SVG, laid out from a schema's state table.

The spec site shows this drawing on the lifecycle page (``spec/hooks.py`` puts
it where the checked-in page has the Mermaid source), so the diagram needs no
script and no network. The layout is plain arithmetic, with no layout engine,
so the same table always gives the same bytes:

* the states stand in a column, in ``State`` order, those with no way out last;
* a transition to the next state in the column runs straight down, one back to
  the previous state straight up, each labelled beside its arrow;
* a transition to the same state is a loop on the right of its box;
* a transition that skips states runs in a lane on the left, labelled where it
  leaves its state;
* a transition that every live state has, to the first state with no way out
  (in v1 a fatal ERROR, to ``CLOSED``), is drawn once, from a dashed box around
  the live states;
* a start mark points at the first state and an end mark follows each state
  with no way out.

Labels are ``_specdoc.state_edges``'s, the ones the Mermaid source uses. Text
widths are estimated from character counts, generously, since the reader's
fonts are unknown. Colours are left to the page's stylesheet (classes
``cp-sd-*``, see ``spec/assets/site.css``), so the drawing follows the light and
dark palettes; the presentation attributes are the fallback without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from chatproto._schema import SCHEMA, Schema
from chatproto._state import State
from chatproto_spec._specdoc import Transitions, state_edges

FONT_PX = 12
LINE_PX = 16
CHAR_EM = 0.57
"""Estimated width of a character in em: about 10% above Arial's, for mostly capitals."""
MONO_EM = 0.6
BOX_PAD_PX = 14
BOX_HEIGHT_PX = 34
MIN_ARROW_PX = 30
LABEL_GAP_PX = 8
PAIR_OFFSET_PX = 16
"""How far a down arrow and an up arrow between the same two states stand apart."""
LOOP_OUT_PX = 30
LANE_GAP_PX = 14
GROUP_PAD_PX = 12
MARK_RADIUS_PX = 7
MARGIN_PX = 6
ARROW_MARKER = "cp-sd-arrow"
TITLE_ID = "cp-sd-title"


def _px(value: float) -> str:
    return f"{round(value, 1):g}"


def _text_width(text: str, em: float = CHAR_EM) -> float:
    return len(text) * FONT_PX * em


def _block_width(lines: list[str]) -> float:
    return max((_text_width(line) for line in lines), default=0.0)


@dataclass
class _Canvas:
    """SVG elements in drawing order, and the extent they cover."""

    parts: list[str] = field(default_factory=list)
    left: float = 0.0
    top: float = 0.0
    right: float = 0.0
    bottom: float = 0.0

    def cover(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.left, self.right = min(self.left, x0, x1), max(self.right, x0, x1)
        self.top, self.bottom = min(self.top, y0, y1), max(self.bottom, y0, y1)

    def path(self, d: list[tuple[str, float, float]], css: str, *, arrow: bool = True) -> None:
        for _, x, y in d:
            self.cover(x, y, x, y)
        points = " ".join(f"H{_px(x)}" if command == "H" else f"V{_px(y)}" if command == "V"
                          else f"{command}{_px(x)},{_px(y)}" for command, x, y in d)
        end = f' marker-end="url(#{ARROW_MARKER})"' if arrow else ""
        self.parts.append(f'<path class="{css}" d="{points}" fill="none" '
                          f'stroke="currentColor"{end}/>')

    def transition(self, sources: list[State], target: State) -> None:
        """Open the group of one arrow and its label (closed by ``done``)."""
        self.parts.append(f'<g class="cp-sd-transition" data-from="{" ".join(sources)}" '
                          f'data-to="{target}">')

    def done(self) -> None:
        self.parts.append("</g>")

    def label(self, x: float, top: float, lines: list[str], *, anchor: str = "start") -> None:
        """Lines of text from ``top`` down, starting (or ending, ``anchor="end"``) at ``x``."""
        width = _block_width(lines)
        self.cover(x - width if anchor == "end" else x, top,
                   x if anchor == "end" else x + width, top + len(lines) * LINE_PX)
        spans = "".join(f'<tspan x="{_px(x)}" y="{_px(top + LINE_PX * i + FONT_PX)}">'
                        f"{escape(line)}</tspan>" for i, line in enumerate(lines))
        self.parts.append(f'<text class="cp-sd-label" text-anchor="{anchor}" '
                          f'fill="currentColor">{spans}</text>')


@dataclass(frozen=True)
class _Plan:
    """Which transitions are drawn how."""

    column: list[State]
    live: list[State]
    shared: list[str]
    """Labels of the transitions every live state has (drawn from the dashed box)."""
    shared_target: State | None
    loops: dict[State, list[str]]
    down: dict[int, list[str]]
    """Gap index (between column[i] and column[i + 1]) -> labels of the arrow down."""
    up: dict[int, list[str]]
    lanes: list[tuple[State, State, list[str]]]


def _plan(transitions: Transitions, schema: Schema) -> _Plan:
    live = [state for state in State if any(s is state for (s, _, _) in transitions)]
    column = live + [state for state in State if state not in live]
    index = {state: i for i, state in enumerate(column)}
    target = column[len(live)] if len(live) < len(column) else None
    shared_keys = {
        (sender, key) for (state, sender, key), after in transitions.items()
        if len(live) > 1 and state is live[0] and after is target
        and all(transitions.get((other, sender, key)) is target for other in live)
    }
    rest = {k: v for k, v in transitions.items() if (k[1], k[2]) not in shared_keys}
    shared = (state_edges({(live[0], s, k): target for (s, k) in shared_keys},
                          schema)[(live[0], target)]
              if shared_keys and target is not None else [])
    loops: dict[State, list[str]] = {}
    down: dict[int, list[str]] = {}
    up: dict[int, list[str]] = {}
    lanes: list[tuple[State, State, list[str]]] = []
    for (state, after), labels in state_edges(rest, schema).items():
        step = index[after] - index[state]
        if step == 0:
            loops[state] = labels
        elif step == 1:
            down[index[state]] = labels
        elif step == -1:
            up[index[after]] = labels
        else:
            lanes.append((state, after, labels))
    lanes.sort(key=lambda lane: (abs(index[lane[1]] - index[lane[0]]), index[lane[0]]))
    return _Plan(column, live, shared, target if shared else None, loops, down, up, lanes)


def render_state_svg(schema: Schema = SCHEMA, transitions: Transitions | None = None) -> str:
    """The state diagram of ``schema`` (or of the table ``transitions``) as one
    ``<svg>`` element, on one line per element."""
    plan = _plan(schema.transitions if transitions is None else transitions, schema)
    canvas = _Canvas()
    box_width = max(_text_width(s, MONO_EM) for s in plan.column) + 2 * BOX_PAD_PX
    box_left, box_right = -box_width / 2, box_width / 2
    last_live = len(plan.live) - 1
    has_group = bool(plan.shared)

    def overhang(state: State) -> float:
        """How far a loop's label reaches above (and below) its box."""
        lines = len(plan.loops.get(state, []))
        return max(0.0, (lines * LINE_PX - BOX_HEIGHT_PX) / 2)

    # Vertical positions: box tops, and for each gap where its labels and arrows start.
    tops: list[float] = []
    gap_starts: list[float] = []
    group_bottom = 0.0
    y: float = 2 * MARK_RADIUS_PX + MIN_ARROW_PX
    for i, state in enumerate(plan.column):
        tops.append(y + overhang(state))
        y = tops[-1] + BOX_HEIGHT_PX + overhang(state)
        if i + 1 == len(plan.column):
            break
        if has_group and i == last_live:
            group_bottom = y + GROUP_PAD_PX
            y = group_bottom
        gap_starts.append(y)
        lines = max(len(plan.down.get(i, [])), len(plan.up.get(i, [])),
                    len(plan.shared) if has_group and i == last_live else 0)
        y += max(MIN_ARROW_PX, lines * LINE_PX + 2 * LABEL_GAP_PX) + overhang(plan.column[i + 1])
    centres = {state: top + BOX_HEIGHT_PX / 2 for state, top in zip(plan.column, tops, strict=True)}

    # The start mark.
    canvas.parts.append(f'<circle class="cp-sd-mark" cx="0" cy="{_px(MARK_RADIUS_PX)}" '
                        f'r="{_px(MARK_RADIUS_PX)}" fill="currentColor"/>')
    canvas.cover(-MARK_RADIUS_PX, 0, MARK_RADIUS_PX, 2 * MARK_RADIUS_PX)
    canvas.path([("M", 0, 2 * MARK_RADIUS_PX), ("V", 0, tops[0])], "cp-sd-edge")

    # Arrows between neighbours: down on the right of the centre, up on its left.
    left_reach: dict[int, float] = {}
    for i in range(len(plan.column) - 1):
        start = gap_starts[i]
        end = tops[i + 1]
        lower = plan.down.get(i, [])
        upper = plan.up.get(i, [])
        shared = plan.shared if has_group and i == last_live else []
        left_labels = upper or shared
        x_down = PAIR_OFFSET_PX if left_labels else 0
        x_up = -PAIR_OFFSET_PX if lower else 0
        mid = (start + end) / 2
        above, below = plan.column[i], plan.column[i + 1]
        if lower:
            # From the box itself, through the dashed box's border if there is one.
            canvas.transition([above], below)
            canvas.path([("M", x_down, tops[i] + BOX_HEIGHT_PX), ("V", x_down, end)], "cp-sd-edge")
            canvas.label(x_down + LABEL_GAP_PX, mid - len(lower) * LINE_PX / 2, lower)
            canvas.done()
        if left_labels:
            if upper:
                canvas.transition([below], above)
                canvas.path([("M", x_up, end), ("V", x_up, tops[i] + BOX_HEIGHT_PX)],
                            "cp-sd-edge")
            else:
                canvas.transition(plan.live, below)
                canvas.path([("M", x_up, start), ("V", x_up, end)], "cp-sd-edge")
            canvas.label(x_up - LABEL_GAP_PX, mid - len(left_labels) * LINE_PX / 2,
                         left_labels, anchor="end")
            canvas.done()
            left_reach[i] = x_up - LABEL_GAP_PX - _block_width(left_labels)

    # Loops on the right.
    for state, labels in plan.loops.items():
        cy = centres[state]
        spread = BOX_HEIGHT_PX / 4
        canvas.transition([state], state)
        canvas.path([("M", box_right, cy - spread),
                     ("C", box_right + LOOP_OUT_PX, cy - spread - 10),
                     ("", box_right + LOOP_OUT_PX, cy + spread + 10),
                     ("", box_right, cy + spread)], "cp-sd-edge")
        canvas.label(box_right + LOOP_OUT_PX + LABEL_GAP_PX, cy - len(labels) * LINE_PX / 2,
                     labels)
        canvas.done()

    # Lanes on the left, the shortest innermost; each end takes its own port on the box.
    index = {state: i for i, state in enumerate(plan.column)}
    ends: dict[State, int] = {}
    for state, after, _ in plan.lanes:
        ends[state] = ends.get(state, 0) + 1
        ends[after] = ends.get(after, 0) + 1
    used: dict[State, int] = {}

    def port(state: State) -> float:
        slot = used.get(state, 0)
        used[state] = slot + 1
        return centres[state] + (slot - (ends[state] - 1) / 2) * 10

    lane_x = box_left
    # A lane's label stands on its stub, between the lane and the box, or, when an inner
    # lane passes the same row, between the lane and that inner lane.
    free_until: dict[int, float] = {}
    """Row -> where the innermost lane passing that row stands."""
    for state, after, labels in plan.lanes:
        low, high = sorted((index[state], index[after]))
        x = min(free_until.get(index[state], box_left) - _block_width(labels) - 2 * LABEL_GAP_PX,
                lane_x - LANE_GAP_PX,
                *(left_reach[i] - LANE_GAP_PX for i in range(low, high) if i in left_reach))
        lane_x = x
        for row in range(low, high + 1):
            free_until[row] = min(free_until.get(row, box_left), x)
        y0, y1 = port(state), port(after)
        turn = 6 if y1 > y0 else -6
        canvas.transition([state], after)
        canvas.path([("M", box_left, y0), ("H", x + 6, y0), ("Q", x, y0), ("", x, y0 + turn),
                     ("V", x, y1 - turn), ("Q", x, y1), ("", x + 6, y1), ("H", box_left, y1)],
                    "cp-sd-edge")
        canvas.label(x + LABEL_GAP_PX, y0 - 3 - len(labels) * LINE_PX, labels)
        canvas.done()

    # The boxes, over the arrows' ends.
    for state in plan.column:
        top = tops[index[state]]
        canvas.parts.append(
            f'<rect class="cp-sd-state" x="{_px(box_left)}" y="{_px(top)}" '
            f'width="{_px(box_width)}" height="{BOX_HEIGHT_PX}" rx="6" '
            f'fill="none" stroke="currentColor"/>'
            f'<text class="cp-sd-name" x="0" y="{_px(top + BOX_HEIGHT_PX / 2 + FONT_PX * 0.35)}" '
            f'text-anchor="middle" fill="currentColor">{escape(state.value)}</text>')
        canvas.cover(box_left, top, box_right, top + BOX_HEIGHT_PX)

    if has_group:
        # Drawn first, under everything: it only frames the live states.
        x0, x1 = canvas.left - GROUP_PAD_PX, canvas.right + GROUP_PAD_PX
        y0 = tops[0] - GROUP_PAD_PX
        canvas.parts.insert(0, f'<rect class="cp-sd-group" x="{_px(x0)}" y="{_px(y0)}" '
                               f'width="{_px(x1 - x0)}" height="{_px(group_bottom - y0)}" '
                               'rx="10" fill="none" stroke="currentColor" '
                               'stroke-dasharray="5 4"/>')
        canvas.cover(x0, y0, x1, group_bottom)

    # End marks after the states with no way out.
    for state in plan.column[len(plan.live):]:
        cy = centres[state]
        mark = box_right + MIN_ARROW_PX + MARK_RADIUS_PX
        canvas.path([("M", box_right, cy), ("H", mark - MARK_RADIUS_PX - 2, cy)], "cp-sd-edge")
        canvas.parts.append(
            f'<circle class="cp-sd-end" cx="{_px(mark)}" cy="{_px(cy)}" '
            f'r="{_px(MARK_RADIUS_PX)}" fill="none" stroke="currentColor"/>'
            f'<circle class="cp-sd-mark" cx="{_px(mark)}" cy="{_px(cy)}" '
            f'r="{_px(MARK_RADIUS_PX - 3)}" fill="currentColor"/>')
        canvas.cover(mark - MARK_RADIUS_PX, cy - MARK_RADIUS_PX, mark + MARK_RADIUS_PX,
                     cy + MARK_RADIUS_PX)

    x0, y0 = canvas.left - MARGIN_PX, canvas.top - MARGIN_PX
    width, height = canvas.right - x0 + MARGIN_PX, canvas.bottom - y0 + MARGIN_PX
    names = ", ".join(state.value for state in plan.column)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="cp-sd" role="img" '
            f'aria-labelledby="{TITLE_ID}" width="{_px(width)}" height="{_px(height)}" '
            f'viewBox="{_px(x0)} {_px(y0)} {_px(width)} {_px(height)}" '
            f'font-size="{FONT_PX}" font-family="sans-serif">')
    defs = (f'<title id="{TITLE_ID}">Connection state diagram: {escape(names)}</title>'
            f'<defs><marker id="{ARROW_MARKER}" viewBox="0 0 10 10" refX="9" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            '<path class="cp-sd-head" d="M0,0L10,5L0,10z" fill="currentColor"/>'
            "</marker></defs>")
    return "\n".join([head, defs, *canvas.parts, "</svg>"])
