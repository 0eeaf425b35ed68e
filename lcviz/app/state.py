"""Slider state that lives in the URL, and the error boundary every page runs inside.

A widget's value comes from the URL when the page opens (a bookmark), then from the widget, and
is written back to the URL on every rerun. A URL value that is not allowed shows a warning and
falls back to the default: it never crashes the page.
"""

import io
from contextlib import contextmanager

import streamlit as st

from lcviz import masks


@st.cache_resource(max_entries=16, show_spinner=False)
def cached_mask(pattern, length, params):
    """masks.build_mask for hashable params, built once per setting and shared read-only by
    the pages (a 4096 x 4096 mask takes ~70 ms to build)."""
    return masks.build_mask(pattern, length, **dict(params))


def png(fig):
    """A figure rendered once to PNG bytes: pages cache these per slider setting, so moving a
    slider back to a value already seen costs nothing, and st.image just sends the bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


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
                            on_change=_forget_sliders)
    st.query_params["page"] = page
    return page


def _forget_sliders():
    """A new page starts from its defaults: drop the old page's URL parameters."""
    for key in list(st.query_params):
        if key != "page":
            del st.query_params[key]


def open_scene(page, values):
    """Button callback: jump to `page` with the given slider values (and put them in the URL)."""
    st.query_params.clear()
    st.query_params["page"] = page
    st.session_state["page"] = page
    for key, value in values.items():
        st.session_state[key] = value
        st.query_params[key] = str(value)


def _initial(key, default, parse, allowed, describe):
    """The widget's first value: the URL's if it parses and is allowed, else the default."""
    if key in st.session_state:
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


def int_slider(label, key, minimum, maximum, default, **kwargs):
    """An integer slider whose value is read from and written to the URL parameter `key`."""
    _initial(key, default, int, lambda v: minimum <= v <= maximum,
             f"an integer from {minimum} to {maximum}")
    value = st.slider(label, minimum, maximum, key=key, **kwargs)
    st.query_params[key] = str(value)
    return value


def float_slider(label, key, minimum, maximum, default, step):
    """A float slider whose value is read from and written to the URL parameter `key`."""
    _initial(key, default, float, lambda v: minimum <= v <= maximum,
             f"a number from {minimum} to {maximum}")
    value = st.slider(label, float(minimum), float(maximum), key=key, step=float(step))
    st.query_params[key] = str(value)
    return value


def choice(label, key, options, default, **kwargs):
    """A selectbox whose value is read from and written to the URL parameter `key`."""
    _initial(key, default, str, lambda v: v in options, f"one of {', '.join(options)}")
    value = st.selectbox(label, options, key=key, **kwargs)
    st.query_params[key] = value
    return value


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
