"""Figures of topic 03 receptive fields: each returns a figure and never calls show()."""

import numpy as np

from lcviz.plots.core import new_figure, plotly_figure
from lcviz.receptive import window_receptive_field


def reachability_heatmaps(reach, title="Which inputs reach each output"):
    """One heatmap per layer: reach is a list of L bool (T, T) matrices (lcviz.receptive)."""
    fig = new_figure(2.8 * len(reach), 3.5)
    axes = fig.subplots(1, len(reach), squeeze=False)[0]
    for layer, (ax, matrix) in enumerate(zip(axes, reach), start=1):
        ax.imshow(np.asarray(matrix, dtype=float), cmap="Oranges", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set(title=f"after {layer} layer{'s' if layer > 1 else ''}", xlabel="input j")
    axes[0].set_ylabel("output t")
    fig.suptitle(title)
    fig.get_layout_engine().set(h_pad=0.15)  # keep the panel titles clear of the suptitle
    return fig


def receptive_growth(curves, window=None, title="Receptive field of the last position"):
    """Field size against depth: curves maps a label to sizes per layer (1..L). With `window`,
    the naive w·L and the exact L(w-1)+1 lines are drawn for comparison."""
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot()
    for label, sizes in curves.items():
        layers = np.arange(1, len(sizes) + 1)
        ax.plot(layers, sizes, "o-", label=label)
    if window is not None:
        layers = np.arange(1, max(len(s) for s in curves.values()) + 1)
        ax.plot(layers, window * layers, ":", color="gray", label=f"w·L (w={window})")
        ax.plot(layers, [window_receptive_field(window, int(n)) for n in layers], "--", color="black", lw=1,
                label="L(w-1)+1 exact")
    ax.set(xlabel="layers L", ylabel="input positions reached", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def effective_field(grads, cone, position, title="Effective receptive field"):
    """Gradient norm of the prediction at `position` per input (bars, log scale) over the
    theoretical cone (shaded): grads and cone are (T,) arrays."""
    grads, cone = np.asarray(grads, dtype=float), np.asarray(cone, dtype=bool)
    fig = new_figure(6.5, 3.2)
    ax = fig.add_subplot()
    positions = np.arange(len(grads))
    ax.fill_between(positions, 0, 1, where=cone, step="mid", color="tab:orange", alpha=0.15,
                    transform=ax.get_xaxis_transform(), label="reachable (exact cone)")
    ax.bar(positions, np.where(grads > 0, grads, np.nan), width=1.0, color="tab:blue",
           label="|d loss / d input|")
    ax.axvline(position, color="black", lw=1, ls="--", label=f"output position {position}")
    ax.set_yscale("log")
    ax.set(xlabel="input position j", ylabel="gradient norm", title=title)
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ---- interactive (plotly) versions ----------------------------------------------------------



def receptive_growth_plotly(curves, window=None, title="Receptive field of the last position",
                            height=380):
    """Field size against depth, one point per layer (integer ticks): curves maps a label to
    sizes per layer (1..L). With `window`, the naive guess w·L and the exact L(w-1)+1 are drawn
    for comparison. Hover gives the number of input positions reached."""
    import plotly.graph_objects as go

    depth = max(len(sizes) for sizes in curves.values())
    layers = list(range(1, depth + 1))
    traces = [go.Scatter(x=layers[:len(sizes)], y=list(sizes), mode="lines+markers",
                         name=f"{label} (measured)", line={"width": 5}, marker={"size": 11},
                         hovertemplate="after %{x} layers: %{y} positions reach<extra></extra>")
              for label, sizes in curves.items()]
    if window is not None:
        traces += [
            go.Scatter(x=layers, y=[window * n for n in layers], mode="lines",
                       line={"dash": "dot", "color": "grey"}, name=f"naive guess w·L (w = {window})",
                       hovertemplate="w·L = %{y}<extra></extra>"),
            go.Scatter(x=layers, y=[window_receptive_field(window, n) for n in layers],
                       mode="lines", line={"dash": "dash", "color": "black", "width": 2.5},
                       name="exact L(w−1)+1", hovertemplate="L(w−1)+1 = %{y}<extra></extra>")]
    layout = {"title": {"text": title}, "height": height,
              "margin": {"l": 70, "r": 20, "t": 60, "b": 60}, "hovermode": "x unified",
              "xaxis": {"title": {"text": "layers L"}, "tickmode": "linear", "tick0": 1,
                        "dtick": max(1, -(-depth // 12)), "range": [0.7, depth + 0.3]},
              "yaxis": {"title": {"text": "input positions reached"}, "rangemode": "tozero"},
              "legend": {"orientation": "h", "y": -0.2, "x": 0}}
    return plotly_figure(traces, layout)


def first_layer_reached(reach):
    """(T, T) float array: the first layer (1..L) after which input j reaches output t, NaN when
    it does not within the L layers of `reach` (a list of L bool (T, T) matrices)."""
    reach = [np.asarray(r, dtype=bool) for r in reach]
    first = np.full(reach[0].shape, np.nan, dtype=np.float32)
    for layer in range(len(reach), 0, -1):  # deepest first, so the earliest layer wins
        first[reach[layer - 1]] = layer
    return first


def reachability_plotly(reach, title="Layers until input j reaches output t",
                        height=560):
    """One heatmap for all layers: cell (t, j) = the first layer after which input j reaches
    output t (first_layer_reached); blank = not within the layers drawn. Hover gives the count."""
    import plotly.graph_objects as go

    first = first_layer_reached(reach)
    layers = len(reach)
    heatmap = go.Heatmap(z=first, zmin=0.5, zmax=layers + 0.5, hoverongaps=False, name="reach",
                         colorscale="Oranges_r",
                         colorbar={"title": {"text": "layers"}, "tickvals": list(range(1, layers + 1))},
                         hovertemplate="output %{y} ← input %{x}<br>reached after %{z} "
                                       "layer(s)<extra></extra>")
    layout = {"title": {"text": title}, "height": height,
              "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
              "xaxis": {"title": {"text": "input j"}, "constrain": "domain"},
              "yaxis": {"title": {"text": "output t"}, "autorange": "reversed", "scaleanchor": "x",
                        "constrain": "domain"}}
    return plotly_figure(heatmap, layout)


def field_growth(curves, window=None, title="Receptive field of the last position"):
    """Field size against depth on a log scale, so patterns that reach 10 and 1000 positions stay
    readable side by side: curves maps a label to sizes per layer (1..L). With `window`, the
    exact L(w-1)+1 line of a plain window is drawn for comparison."""
    fig = new_figure(6.5, 4.2)
    ax = fig.add_subplot()
    for label, sizes in curves.items():
        ax.plot(np.arange(1, len(sizes) + 1), sizes, "o-", label=label)
    if window is not None:
        layers = np.arange(1, max(len(s) for s in curves.values()) + 1)
        ax.plot(layers, [window_receptive_field(window, int(n)) for n in layers], "--",
                color="black", lw=1, label=f"L(w-1)+1, w={window}")
    ax.set_yscale("log")
    ax.set_xlabel("layers L", fontsize=12)
    ax.set_ylabel("input positions reached (log scale)", fontsize=12)
    ax.set_title(title, fontsize=13)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=10, loc="center right")
    return fig
