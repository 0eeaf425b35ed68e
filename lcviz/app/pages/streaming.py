"""Streaming page: model, KV-cache policy, budget, sinks, positions and stream position -> which
tokens each decoding step could still see (kept-token map over time) and the loss along the
stream against re-computation and the dense cache (notebook 08)."""

import streamlit as st
import torch

from lcviz import plots, streaming
from lcviz.app import state
from lcviz.checkpoints import load_checkpoint, load_info

MODELS = ("rope-charlm", "sink-charlm")  # the second has a learnable sink token first
STREAM = 640  # tokens streamed per setting (10x the models' training length of 64)
BUCKET = 16   # loss curve: mean over this many tokens
VIEWS = ("loss", "loss minus re-computation")
PROMPT = STREAM // 2  # SnapKV compresses the cache after reading this many tokens
BUCKET_TOKENS = 128  # a view computes the stream up to its position, in steps of this many


@st.cache_resource(show_spinner=False)
def streaming_model(name):
    model, info = load_checkpoint(name)
    return model, info.get("metrics", {}).get("sink_token")


@st.cache_resource(max_entries=4, show_spinner=False)
def stream_ids(name):
    """The held-out stream, with the model's sink token first when it has one."""
    _, sink = streaming_model(name)
    text = streaming.held_out_stream(STREAM if sink is None else STREAM - 1)
    return text if sink is None else torch.cat([torch.tensor([sink]), text])


@st.cache_resource(max_entries=4, show_spinner=False)
def dense_loss(name):
    """Per-token loss of the dense cache over the whole stream (the same for every budget)."""
    model, _ = streaming_model(name)
    return streaming.stream(model, stream_ids(name), streaming.Policy("full")).nll[0]


@st.cache_resource(max_entries=16, show_spinner=False)
def recomputed_loss(name, budget, length):
    """Per-token loss of re-computation over the last `budget` tokens for the first `length`
    tokens of the stream (with the sink token first in every window for the sink model)."""
    model, sink = streaming_model(name)
    ids = stream_ids(name)[:length]
    if sink is None:
        return streaming.strided_loss(model, ids, budget, 1).nll
    # the sink token is target-less: the first text token's loss is the dense one (it reads
    # only the sink), the text after it is scored in windows that keep the sink first
    return torch.cat([dense_loss(name)[:1], streaming.strided_loss(model, ids[1:], budget, 1,
                                                                   prefix_token=sink).nll])


@st.cache_resource(max_entries=64, show_spinner=False)
def run(name, policy, length):
    """(kept map (steps, positions) of layer 0 head 0, per-token loss, KV entries per step) for
    the first `length` tokens of the stream."""
    model, _ = streaming_model(name)
    result = streaming.stream(model, stream_ids(name)[:length], policy, record=True,
                              prompt_length=min(PROMPT, length))
    return streaming.kept_map(result), result.nll[0], result.kv_entries


def computed_length(policy, position):
    """How much of the stream a view needs: `position` tokens rounded up to a multiple of
    BUCKET_TOKENS (a step of the position slider mostly reuses a run), and the whole stream for
    SnapKV, which compresses once the prompt has been read. Every other policy decides step t
    from tokens up to t, so a shorter run is the start of a longer one."""
    if policy.name == "snapkv":
        return STREAM
    return min(STREAM, -(-position // BUCKET_TOKENS) * BUCKET_TOKENS)


def make_policy(name, budget, sinks, positions):
    settings = {}
    if name == "sink":
        settings["n_sink"] = sinks
    if name in ("sink", "h2o", "tova"):
        settings["positions"] = positions
    return streaming.Policy(name, None if name == "full" else budget, **settings)


def render():
    top = st.columns(3)
    with top[0]:
        name = state.choice("model", "model", list(MODELS), MODELS[0])
    with top[1]:
        policy_name = state.choice("KV-cache policy", "policy", list(streaming.POLICIES), "sink",
                                   format_func=lambda p: streaming.POLICY_TITLES[p])
    with top[2]:
        positions = state.choice("positions", "positions", list(streaming.POSITION_MODES),
                                 "cache", format_func=lambda p: f"{p} positions")
    sliders = st.columns(3)
    with sliders[0]:
        budget = state.int_slider("budget (keys per query)", "budget", 8, 128, 64)
    with sliders[1]:
        sinks = state.int_slider("sinks (StreamingLLM)", "sinks", 0, 8, 4)
    with sliders[2]:
        position = state.int_slider("stream position (tokens read)", "position", 16, STREAM, 128)
    if policy_name == "sink" and sinks >= budget:
        st.error(f"{sinks} sinks leave no room in a budget of {budget}: StreamingLLM needs "
                 f"n_sink < budget. Move the sinks below {budget} or raise the budget.")
        return
    if policy_name == "sink" and sinks == 0:
        st.info("0 sinks: StreamingLLM becomes window attention without sinks.")
    policy = make_policy(policy_name, budget, sinks, positions)
    model, sink = streaming_model(name)
    training_length = model.config.block_size
    length = computed_length(policy, position)
    grid, nll, entries = run(name, policy, length)
    recompute, dense = recomputed_loss(name, budget, length), dense_loss(name)
    upto = position - 1  # losses of the tokens predicted so far
    st.markdown(f"#### {policy.label}")
    st.write(f"KV entries the query at {position - 1} reads: **{entries[position - 1]}** "
             f"(dense: {position})")
    st.write(f"mean loss over the first {position} tokens: **{nll[:upto].mean():.3f}** "
             f"nats; re-computation {recompute[:upto].mean():.3f}; dense "
             f"{dense[:upto].mean():.3f}")
    if sink is not None:
        st.caption(f"{name} reads its learnable sink token (id {sink}) first; keep it with "
                   "1 sink or more.")
    if policy_name == "snapkv":
        st.caption(f"SnapKV compresses once, after the first {PROMPT} tokens (the "
                   "prompt); afterwards the cache grows.")
    if policy_name not in ("sink", "h2o", "tova"):
        st.caption("positions: this policy keeps the stream's own positions (for a window "
                   "they give the same attention as rolled ones: RoPE is relative)")
    st.markdown("**Which tokens each decoding step still sees**: a row per step, dark where "
                "its query can read the token (layer 0, head 0).")
    marks = {"training length": training_length} if position > training_length else None
    state.plot(plots.kept_heatmap(grid[:position, :position], marks=marks,
                                  title="What each step sees"), key="kept")
    with st.columns(2)[0]:
        view = state.choice("loss curve", "view", list(VIEWS), VIEWS[0])
    if view == VIEWS[0]:
        curves = {policy.label: nll[:upto], "window with re-computation": recompute[:upto],
                  "dense (full cache)": dense[:upto]}
        fig = plots.stream_loss_plotly(curves, training_length, bucket=BUCKET)
    else:  # the small differences a dense curve would hide (e.g. when the first token leaves)
        fig = plots.stream_loss_plotly({policy.label: nll[:upto] - recompute[:upto]},
                                       training_length, bucket=BUCKET,
                                       title="Loss minus re-computation")
        fig.update_yaxes(title_text=f"nats, mean of {BUCKET}")
        fig.add_hline(y=0, line_color="black", line_width=1)
        late = budget > 0.6 * position  # the label goes left of a line near the right edge
        fig.add_vline(x=budget, line_dash="dash", line_color="#d62728",
                      annotation_text="first token leaves",
                      annotation_position="bottom left" if late else "bottom right",
                      annotation_font_size=15)
    # the legend under the axes: beside them it leaves a narrow column no room for the curves
    fig.update_xaxes(automargin=True)
    fig.update_layout(showlegend=True, height=460,
                      legend={"orientation": "h", "yref": "container", "yanchor": "bottom",
                              "y": 0, "x": 0})
    state.plot(fig, key="loss")
    info = load_info(name).get("metrics", {})
    if "val_loss" in info:
        st.caption(f"{name}: held-out loss {info['val_loss']:.3f} at its training length "
                   f"{training_length}.")
