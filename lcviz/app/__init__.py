"""The lecturer's Streamlit app: one page per topic, driven by sliders whose state lives in the
URL, so each view can be bookmarked for a slide. `app.py` calls `main()`.

Pages come from the course table (lcviz.course.TOPICS): lcviz/app/pages/<slug>.py with a
`render()` that draws with lcviz.plots, the same figures as the notebooks. Every page runs inside
`state.guarded`, so bad input shows an st.error saying what to change, never a traceback. Widget
values never leak from one page to the next (lcviz.app.state).
"""

import importlib

import streamlit as st

from lcviz.app import state
from lcviz.checkpoints import checkpoint_paths
from lcviz.course import TOPICS
from lcviz.recipes import RECIPES

# URL name (the topic's slug) -> title in the sidebar
PAGES = {topic.slug: topic.title for topic in TOPICS}


def _passkey_scene_models():
    """(a full-attention model, the windowed model with the shortest reach) among the passkey
    recipes whose checkpoint is in data/, from their settings, so the scenes follow the recipes
    in lcviz.recipes and the checkpoints at hand."""
    names = {name: recipe.settings for name, recipe in RECIPES.items()
             if recipe.topic == "passkey" and checkpoint_paths(name)[0].exists()}
    if not names:
        return None, None
    full = [n for n, s in names.items() if s.get("window") is None] or list(names)
    windowed = sorted((s.get("n_layer", 1) * (s["window"] - 1) + 1, n) for n, s in names.items()
                      if s.get("window") is not None) or [(0, full[0])]
    return full[0], windowed[0][1]


FULL_MODEL, SHORT_REACH_MODEL = _passkey_scene_models()

# Ready-made views for the lesson's key moments: (label, page, widget values).
SCENES = [
    ("Window 3 over 6 tokens", "masks",
     {"pattern": "sliding window", "length": 6, "window": 3}),
    ("Longformer: window + global tokens", "masks",
     {"pattern": "global + local", "length": 128, "window": 8, "n_global": 3}),
    ("BigBird: window + random keys", "masks",
     {"pattern": "random", "length": 128, "window": 8, "n_random": 3}),
    ("Receptive field grows w-1 per layer", "receptive",
     {"pattern": "sliding window", "length": 64, "window": 4, "layers": 4}),
    ("Window 128, 8 layers: the field is 1017", "receptive",
     {"pattern": "sliding window", "length": 2048, "window": 128, "layers": 8}),
    ("Global tokens collapse the depth", "receptive",
     {"pattern": "global + local", "length": 256, "window": 8, "layers": 3}),
    ("Dense attention explodes at 16K", "memory", {"length": 16384, "window": 256}),
    ("What the trained model attends to", "transformer", {"layer": 1, "head": 0}),
    ("PI Figure 2: extrapolation explodes", "rope",
     {"method": "default", "factor": 4.0, "original": 2048}),
    ("YaRN keeps the fast pairs", "rope", {"method": "yarn", "factor": 8.0, "original": 2048}),
    ("Passkey: full attention finds it", "passkey",
     {"model": FULL_MODEL, "depth": 20, "seed": 1}),
    ("Passkey: beyond the window's reach", "passkey",
     {"model": SHORT_REACH_MODEL, "depth": 20, "seed": 1}),
    ("Passkey: a layout-trained model on its layout", "passkey",
     {"model": "passkey-layout", "filler": "fixed layout (Landmark)", "depth": 50, "seed": 1}),
    ("Passkey: the same model, filler shuffled", "passkey",
     {"model": "passkey-layout", "filler": "random sentences", "depth": 50, "seed": 1}),
    ("Beacons: chunk 4, ratio 2", "beacons", {"length": 16, "chunk": 4, "ratio": 2}),
    ("Beacons against eviction, same KV budget", "beacons",
     {"length": 256, "chunk": 16, "ratio": 4}),
    ("Beacons: each beacon reads its whole chunk", "beacons",
     {"length": 32, "chunk": 16, "ratio": 4, "coverage": "full"}),
    ("Compare: a needle at 1,024 tokens", "longcontext",
     {"task": "needle in a haystack", "at_needle": 1024, "budget": 4096}),
    ("Compare: the same needle in 64 KB", "longcontext",
     {"task": "needle in a haystack", "at_needle": 1024, "budget": 64}),
    ("Compare: a chain longer than any trained", "longcontext",
     {"task": "variable tracking", "at_vt": 3, "budget": 4096}),
    ("Compare: the gold pair in the middle", "longcontext",
     {"task": "lost in the middle", "at_middle": 8, "budget": 4096}),
    ("Streaming: the first token leaves", "streaming",
     {"model": "sink-charlm", "policy": "window", "budget": 64, "position": 192,
      "view": "loss minus re-computation"}),
    ("Streaming: sinks fix it", "streaming",
     {"model": "sink-charlm", "policy": "sink", "budget": 64, "sinks": 1, "position": 192,
      "view": "loss minus re-computation"}),
    ("Streaming: dense attention past its length", "streaming",
     {"model": "rope-charlm", "policy": "full", "position": 640, "view": "loss"}),
    ("Streaming: absolute positions break the sinks", "streaming",
     {"model": "rope-charlm", "policy": "sink", "budget": 64, "sinks": 4,
      "positions": "original", "position": 640, "view": "loss"}),
]
SCENES = [scene for scene in SCENES  # a passkey scene needs its checkpoint in data/
          if scene[1] != "passkey" or (scene[2]["model"] and checkpoint_paths(scene[2]["model"])[0].exists())]


def main():
    st.set_page_config(page_title="lcviz: long-context attention", layout="wide")
    page = state.choose_page(PAGES)
    with st.sidebar:
        st.markdown("**Scenes** (one per slide)")
        for label, scene_page, values in SCENES:
            st.button(label, key=f"scene:{label}", on_click=state.open_scene,
                      args=(scene_page, values), width="stretch")
        st.caption("The page and every slider live in the URL: bookmark it to come back here.")
    st.title(PAGES[page])
    page_body(page)


@st.fragment
def page_body(page):
    """The page under the title. A fragment: a slider on the page reruns only this, so the
    sidebar's scenes are neither rebuilt nor sent again (a page switch reruns everything)."""
    with state.guarded():
        importlib.import_module(f"lcviz.app.pages.{page}").render()
