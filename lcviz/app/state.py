"""Widget state that lives in the URL, page navigation, figures, and the error boundary every page
runs inside.

A widget made by these helpers takes its value from the URL when a page opens (a bookmark), then
from the widget, and writes it back to the URL on every rerun. A URL value that is not allowed
shows a warning and falls back to the default: it never crashes the page.

Pages share widget keys ("length", "window", ...) with different ranges. Every key a helper made
is remembered; arriving on a page (the sidebar or a scene) forgets them all, so each page opens
on its own defaults (or the scene's values) and never inherits another page's "length". A value
that still falls outside a widget's range (say a ratio that no longer divides a new chunk size)
is moved to the nearest allowed value, and the page says so.
"""

import io
from contextlib import contextmanager

import streamlit as st

from lcviz import masks

KEYS = "_lcviz_widget_keys"  # session-state entry: the widget keys the helpers have made
PLOTLY_CONFIG = {"displaylogo": False, "scrollZoom": False,
                 "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_mask(pattern, length, params):
    """masks.build_mask for hashable params, built once per setting and shared read-only by
    the pages (a 4096 x 4096 mask takes ~70 ms to build)."""
    return masks.build_mask(pattern, length, **dict(params))


def png(fig):
    """A matplotlib figure rendered once to PNG bytes (pages cache these per setting)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def plot(fig, key=None):
    """A plotly figure as wide as its column (it grows and shrinks with the window), in its own
    projector-sized fonts (theme=None: Streamlit's theme would shrink them)."""
    st.plotly_chart(fig, width="stretch", theme=None, config=PLOTLY_CONFIG, key=key)


def legend_below(fig):
    """The legend under the axes (beside them it leaves a narrow column little room), the
    margins grown to hold it and the axis titles."""
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig.update_layout(height=(fig.layout.height or 420) + 40,
                             legend={"orientation": "h", "yref": "container",
                                     "yanchor": "bottom", "y": 0, "x": 0})


# ---- navigation ----------------------------------------------------------------------------

def choose_page(pages):
    """Sidebar page picker bound to ?page=...; returns the page's URL name."""
    names = list(pages)
    if "page" not in st.session_state:
        wanted = st.query_params.get("page", names[0])
        if wanted not in pages:
            st.warning(f"Unknown page {wanted!r} in the URL; showing {pages[names[0]]!r}. "
                       f"Pages: {', '.join(names)}.")
            wanted = names[0]
        st.session_state["page"] = wanted
    page = st.sidebar.radio("Topic", names, key="page", format_func=pages.get,
                            on_change=forget_widgets)
    to_url("page", page)
    return page


def forget_widgets():
    """A page opens on its own defaults: drop every widget value the helpers made (in the
    session and in the URL), whichever page made it."""
    for key in st.session_state.get(KEYS, ()):
        st.session_state.pop(key, None)
    st.session_state[KEYS] = set()
    for key in list(st.query_params):
        if key != "page":
            del st.query_params[key]


def open_scene(page, values):
    """Button callback: jump to `page` with the given widget values (and put them in the URL)."""
    forget_widgets()
    st.query_params["page"] = page
    st.session_state["page"] = page
    for key, value in values.items():
        st.session_state[key] = value
        st.query_params[key] = str(value)
    st.session_state[KEYS] = set(values)


# ---- widgets bound to the URL ----------------------------------------------------------------

def to_url(key, text):
    """Write `text` to the URL parameter `key` when it changed: every write sends the browser a
    message and an address-bar update, so an unchanged value is not written again."""
    if st.query_params.get(key) != text:
        st.query_params[key] = text


def _initial(key, default, parse, allowed, describe, nearest=None, label=None):
    """Set the widget's value before it is drawn: the URL's when the page opens (if it parses and
    is allowed, else the default with a warning); later the widget's own, moved to `nearest`
    allowed value with a note when the widget's range no longer contains it."""
    st.session_state.setdefault(KEYS, set()).add(key)
    if key in st.session_state:
        value = st.session_state[key]
        try:
            ok = allowed(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            moved = nearest(value) if nearest is not None else default
            st.info(f"{label or key}: {value} is not offered here ({describe}); showing {moved}.")
            st.session_state[key] = moved
        return
    raw = st.query_params.get(key)
    value = default
    if raw is not None:
        try:
            parsed = parse(raw)
            if not allowed(parsed):
                raise ValueError
            value = parsed
        except ValueError:
            st.warning(f"URL parameter {key}={raw!r} is not allowed ({describe}); using {default}.")
    st.session_state[key] = value


def _clamp(minimum, maximum, kind):
    def nearest(value):
        try:
            return kind(min(max(kind(value), minimum), maximum))
        except (TypeError, ValueError):
            return kind(minimum)
    return nearest


def int_slider(label, key, minimum, maximum, default, **kwargs):
    """An integer slider whose value is read from and written to the URL parameter `key`."""
    _initial(key, default, int, lambda v: isinstance(v, int) and minimum <= v <= maximum,
             f"an integer from {minimum} to {maximum}", _clamp(minimum, maximum, int), label)
    value = st.slider(label, minimum, maximum, key=key, **kwargs)
    to_url(key, str(value))
    return value


def float_slider(label, key, minimum, maximum, default, step):
    """A float slider whose value is read from and written to the URL parameter `key`."""
    _initial(key, default, float,
             lambda v: isinstance(v, (int, float)) and minimum <= v <= maximum,
             f"a number from {minimum} to {maximum}", _clamp(minimum, maximum, float), label)
    if not isinstance(st.session_state[key], float):
        st.session_state[key] = float(st.session_state[key])
    value = st.slider(label, float(minimum), float(maximum), key=key, step=float(step))
    to_url(key, str(value))
    return value


def option_slider(label, key, options, default, **kwargs):
    """A slider over the given integer `options` only (powers of two, divisors of a chunk...),
    read from and written to the URL parameter `key`."""
    options = [int(o) for o in options]

    def nearest(value):
        try:
            return min(options, key=lambda o: (abs(o - float(value)), o))
        except (TypeError, ValueError):
            return default
    _initial(key, default, int, lambda v: v in options, f"one of {', '.join(map(str, options))}",
             nearest, label)
    value = st.select_slider(label, options, key=key, **kwargs)
    to_url(key, str(value))
    return value


def choice(label, key, options, default, **kwargs):
    """A selectbox whose value is read from and written to the URL parameter `key`."""
    _initial(key, default, str, lambda v: v in options, f"one of {', '.join(options)}",
             lambda _: default, label)
    value = st.selectbox(label, options, key=key, **kwargs)
    to_url(key, value)
    return value


def text(label, key, default, max_chars, **kwargs):
    """A text area whose text is read from and written to the URL parameter `key`."""
    _initial(key, default, str, lambda v: isinstance(v, str) and len(v) <= max_chars,
             f"at most {max_chars} characters", lambda v: str(v)[:max_chars], label)
    value = st.text_area(label, key=key, max_chars=max_chars, **kwargs)
    to_url(key, value)
    return value


# ---- the error boundary ---------------------------------------------------------------------

@contextmanager
def guarded():
    """Run a page: a ValueError (bad combination of sliders) or FileNotFoundError (a missing
    checkpoint) becomes an st.error with its message; anything else a short st.error too."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        st.error(f"{error}")
    except Exception as error:  # noqa: BLE001 - the app never shows a traceback to the class
        st.error(f"This view failed ({type(error).__name__}: {error}). Move a slider back or "
                 f"pick a scene; the notebooks explain the same figure step by step.")
