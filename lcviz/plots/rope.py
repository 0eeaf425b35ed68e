"""Figures of topic 05 RoPE scaling: each returns a figure and never calls show()."""

import numpy as np
from matplotlib.ticker import FuncFormatter, NullLocator

from lcviz.plots.core import new_figure, plotly_figure


def rope_rotations(inv_freq, length, pairs=None):
    """Left: where pair j's rotation lands on the unit circle at positions 0..length-1 (five
    pairs from fastest to slowest unless `pairs` are given).
    Right: each pair's wavelength 2*pi/theta_j against the training length."""
    inv_freq = np.asarray(inv_freq, dtype=float)
    pairs = list(pairs) if pairs is not None else sorted(set(np.linspace(0, len(inv_freq) - 1, 5,
                                                                         dtype=int).tolist()))
    fig = new_figure(10, 4.2)
    circle_ax, wave_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.5]})
    positions = np.arange(length)
    for j in pairs:
        angle = positions * inv_freq[j]
        radius = 1 - 0.12 * pairs.index(j)
        circle_ax.plot(radius * np.cos(angle), radius * np.sin(angle), ".", ms=3,
                       label=f"pair {j}: {angle[-1] / (2 * np.pi):.2g} turns")
    circle_ax.set(aspect="equal", xticks=[], yticks=[],
                  title=f"angles at positions 0..{length - 1}")
    circle_ax.legend(fontsize=7, loc="center", frameon=False)
    wavelength = 2 * np.pi / inv_freq
    wave_ax.semilogy(wavelength, "o-", ms=3, label="wavelength 2π/θ_j")
    wave_ax.axhline(length, color="tab:red", ls="--", label=f"training length {length}")
    wave_ax.fill_between(range(len(wavelength)), length, wavelength, where=wavelength > length,
                         color="tab:red", alpha=0.15, label="never completes a turn in training")
    wave_ax.set(xlabel="pair index j", ylabel="tokens per full turn", title="Wavelength per pair")
    wave_ax.grid(alpha=0.3, which="both")
    wave_ax.legend(fontsize=8)
    return fig


def rope_method_curves(methods, default, original_length, factor,
                       panels=("wavelength", "ratio", "angle")):
    """Per pair j, one panel each: "wavelength" each method ends up with; "ratio" of its
    frequency to the default's (1 = kept, 1/factor = interpolated); "angle": the largest angle
    reached at factor * original_length divided by the largest angle seen in training (> 1 =
    unseen angles, which matter only for pairs that never completed a turn in training).
    methods: {label: inv_freq (D/2,)}; default: the unscaled inv_freq."""
    default = np.asarray(default, dtype=float)
    fig = new_figure(4.3 * len(panels) + 0.4, 4, layout=None)  # placed by hand: fast in the app
    width = 1 / len(panels)
    axes = {name: fig.add_axes(((i + 0.24) * width, 0.13, 0.68 * width, 0.77))
            for i, name in enumerate(panels)}
    for label, inv_freq in methods.items():
        inv_freq = np.asarray(inv_freq, dtype=float)
        values = {"wavelength": 2 * np.pi / inv_freq, "ratio": inv_freq / default,
                  "angle": factor * inv_freq / default}
        for name, ax in axes.items():
            ax.plot(values[name], lw=1.8, label=label)
    if "wavelength" in axes:
        ax = axes["wavelength"]
        for length, style in ((original_length, "--"), (factor * original_length, ":")):
            ax.axhline(length, color="grey", ls=style, lw=1)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # no mathtext
        ax.yaxis.set_minor_locator(NullLocator())  # and no minor ticks: each costs ~2 ms to draw
        ax.set(ylabel="wavelength (tokens)", title=f"-- L = {original_length}, ·· {factor:g}L")
    if "ratio" in axes:
        axes["ratio"].axhline(1 / factor, color="grey", ls=":", lw=1)
        axes["ratio"].set(ylabel="θ_j (method) / θ_j (default)", title="1 = kept, 1/s = interpolated")
    if "angle" in axes:
        ax = axes["angle"]
        ax.axhline(1, color="grey", ls="--", lw=1)
        never_turned = np.nonzero(2 * np.pi / default > original_length)[0]
        if len(never_turned):
            ax.axvspan(never_turned[0] - 0.5, len(default) - 0.5, color="tab:red", alpha=0.1,
                       label="pairs that never turned once in training")
        ax.set(ylabel="max angle at sL / max angle in training",
               title="> 1 = angles never seen in training")
    for ax in axes.values():
        ax.set(xlabel="pair index j")
        ax.grid(alpha=0.3)
    axes[panels[-1]].legend(fontsize=7)
    return fig


def pi_figure2(points, targets, fitted, extrapolated, interpolated, original_length):
    """The Position Interpolation paper's Figure 2 idea, three panels. fitted, extrapolated and
    interpolated are (s, a(s)) pairs: the score fitted on [0, L], the same function beyond L,
    and a zoom between integer positions (fractional s, as interpolation produces)."""
    fig = new_figure(13, 3.8)
    fit_ax, extra_ax, inter_ax = fig.subplots(1, 3)
    fit_ax.plot(*fitted, color="tab:red", lw=1, label="fitted a(s)")
    fit_ax.plot(points, targets, ".", color="black", ms=4, label="random points")
    fit_ax.set(xlabel="relative distance s", ylabel="attention score a(s)",
               title=f"fitted on [0, L = {original_length}]")
    extra_ax.plot(*extrapolated, color="tab:red", lw=1)
    extra_ax.axvline(original_length, color="grey", ls="--", lw=1)
    extra_ax.set(xlabel="relative distance s", title="extrapolation: the same a(s) beyond L")
    s, a = interpolated
    inter_ax.plot(s, a, color="tab:green", lw=1.5)
    for grid_point in np.arange(np.ceil(s[0]), s[-1] + 1e-9):
        inter_ax.axvline(grid_point, color="grey", ls=":", lw=1)
    inter_ax.set(xlabel="relative distance s", title="interpolation: between integers, smooth")
    for ax in (fit_ax, extra_ax, inter_ax):
        ax.grid(alpha=0.3)
    fit_ax.legend(fontsize=8)
    return fig


def score_curves(distances, curves, original_length, title="One query-key score read by each method"):
    """a(s) against relative distance s for each {label: (N,) scores}, the training length marked."""
    fig = new_figure(8, 3.6, layout=None)  # axes placed by hand: drawn per slider move in the app
    ax = fig.add_axes((0.09, 0.15, 0.88, 0.74))
    for label, scores in curves.items():
        ax.plot(np.asarray(distances), np.asarray(scores, dtype=float), lw=1.2, label=label)
    ax.axvline(original_length, color="grey", ls="--", lw=1, label=f"training length {original_length}")
    ax.set(xlabel="relative distance s", ylabel="attention score a(s)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def loss_by_position(curves, original_length, bucket=16, title="Loss against position"):
    """Next-token loss per position (bucketed means) for each {label: (T,) losses}, with the
    training length marked."""
    fig = new_figure(8, 4.2)
    ax = fig.add_subplot()
    for label, losses in curves.items():
        losses = np.asarray(losses, dtype=float)
        starts = np.arange(0, len(losses), bucket)
        means = [losses[i:i + bucket].mean() for i in starts]
        ax.plot(starts + bucket / 2, means, "o-", ms=3, lw=1.6, label=label)
    ax.axvline(original_length, color="grey", ls="--", lw=1, label=f"training length {original_length}")
    ax.set(xlabel="position in the sequence", ylabel=f"loss (mean over {bucket} positions)",
           title=title)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


# ---- interactive (plotly) versions ----------------------------------------------------------

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def frequency_ratio(inv_freq, default, digits=6):
    """theta_j(method) / theta_j(default) per pair, rounded to `digits` decimals: float32 and
    float64 frequencies differ by ~1e-8, which is noise, not scaling."""
    return np.round(np.asarray(inv_freq, dtype=np.float64) / np.asarray(default, dtype=np.float64),
                    digits)


def rope_pairs_plotly(methods, default, original_length, factor, height=440):
    """Per rotation pair j, two panels: the wavelength 2π/θ_j each method ends up with (log
    scale, with the training length L and the scaled length s·L), and its frequency relative to
    the default's (1 = kept, 1/s = interpolated). methods: {label: inv_freq (D/2,)}."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    default = np.asarray(default, dtype=np.float64)
    pairs = np.arange(len(default))
    fig = make_subplots(1, 2, horizontal_spacing=0.12,
                        subplot_titles=("wavelength per pair", "frequency ÷ default"),
                        figure=plotly_figure())
    for index, (label, inv_freq) in enumerate(methods.items()):
        wavelength = 2 * np.pi / np.asarray(inv_freq, dtype=np.float64)
        style = {"mode": "lines", "legendgroup": label,
                 "line": {"color": COLORS[index % len(COLORS)], "width": 3 if index else 2}}
        fig.add_trace(go.Scatter(x=pairs, y=wavelength, name=label, **style,
                                 hovertemplate=f"{label}, pair %{{x}}: %{{y:,.0f}} tokens per "
                                               "turn<extra></extra>"), 1, 1)
        fig.add_trace(go.Scatter(x=pairs, y=frequency_ratio(inv_freq, default), name=label,
                                 showlegend=False, **style,
                                 hovertemplate=f"{label}, pair %{{x}}: θ × %{{y:.4g}}"
                                               "<extra></extra>"), 1, 2)
    lengths = [(original_length, f"training length L = {original_length:,}", "dash")]
    if factor != 1:
        lengths.append((factor * original_length,
                        f"scaled length {factor:g} × L = {factor * original_length:,.0f}", "dot"))
    ratios = [(1.0, "1: kept", "dash")]
    if factor != 1:
        ratios.append((1 / factor, f"1/s = 1/{factor:g}: interpolated", "dot"))
    shapes, notes = [], list(fig.layout.annotations)  # the two subplot titles come first
    for column, lines, log in ((1, lengths, True), (2, ratios, False)):
        axis = "" if column == 1 else str(column)
        for y, text, dash in lines:  # one layout update: add_hline costs ~10 ms a line
            shapes.append({"type": "line", "xref": f"x{axis} domain", "x0": 0, "x1": 1,
                           "yref": f"y{axis}", "y0": y, "y1": y,
                           "line": {"dash": dash, "color": "grey", "width": 1.5}})
            # on a log axis an annotation's y is log10 of the value
            notes.append({"x": 0, "y": np.log10(y) if log else y, "xref": f"x{axis}",
                          "yref": f"y{axis}", "text": text, "showarrow": False,
                          "xanchor": "left", "yanchor": "bottom", "font": {"size": 15}})
    fig.update_layout(shapes=shapes, annotations=notes)
    fig.update_xaxes(title_text="pair index j (fast → slow)")
    fig.update_yaxes(type="log", title_text="tokens per full turn", tickformat=",.0f", dtick=1,
                     row=1, col=1)
    fig.update_yaxes(title_text="frequency ÷ default frequency", range=[0, 1.12], row=1, col=2)
    for title in fig.layout.annotations[:2]:  # the two subplot titles
        title.font = {"size": 16}
    fig.update_layout(height=height, margin={"l": 80, "r": 20, "t": 60, "b": 60},
                      legend={"orientation": "h", "y": -0.2, "x": 0})
    return fig


def score_curves_plotly(distances, curves, original_length,
                        title="Score of one query with itself, against distance", height=400):
    """a(s) against relative distance s for each {label: (N,) scores}; hover gives the score at a
    distance, the training length is marked."""
    import plotly.graph_objects as go

    distances = np.asarray(distances, dtype=np.float64)
    traces = [go.Scatter(x=distances, y=np.asarray(scores, dtype=np.float32), mode="lines",
                         name=label, line={"color": COLORS[i % len(COLORS)], "width": 2},
                         hovertemplate=f"{label}, distance %{{x:,.0f}}: score %{{y:.2f}}"
                                       "<extra></extra>")
              for i, (label, scores) in enumerate(curves.items())]
    layout = {"title": {"text": title}, "height": height,
              "margin": {"l": 70, "r": 20, "t": 60, "b": 60},
              "xaxis": {"title": {"text": "distance between query and key (tokens)"},
                        "tickformat": ",d"},
              "yaxis": {"title": {"text": "attention score"}},
              "legend": {"orientation": "h", "y": -0.25, "x": 0}}
    fig = plotly_figure(traces, layout)
    fig.add_vline(x=original_length, line={"dash": "dash", "color": "grey", "width": 1.5},
                  annotation_text=f"training length L = {original_length:,}",
                  annotation_position="top right", annotation_font_size=15)
    return fig
