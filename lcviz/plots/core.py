"""What every figure shares. Figure functions (lcviz/plots/<topic>.py) return a figure and never
call show(), so the notebooks and the Streamlit app draw with the same code."""

import functools

from matplotlib.figure import Figure


def new_figure(width=6.0, height=4.0, layout="constrained"):
    """A Figure not registered with pyplot's global state (safe in a long-running app).
    layout=None skips the layout engine, for figures that place their axes by hand."""
    return Figure(figsize=(width, height), dpi=100, layout=layout)


PLOTLY_FONT = {"size": 16}  # px: readable on a projector; the figure itself stretches with the page

# What 2-D charts use of plotly_white. The full template also carries 3-D scenes, maps, polar
# and ternary axes and defaults for two dozen trace types, and every figure built copies and
# validates all of it: ~20 ms a figure, a large share of the 300 ms an app slider may take.
_TEMPLATE_LAYOUT = ("annotationdefaults", "autotypenumbers", "coloraxis", "colorscale", "colorway",
                    "font", "hoverlabel", "hovermode", "paper_bgcolor", "plot_bgcolor",
                    "shapedefaults", "title", "xaxis", "yaxis")
_TEMPLATE_TRACES = ("bar", "heatmap", "scatter")


@functools.cache
def plotly_template():
    """plotly_white reduced to _TEMPLATE_LAYOUT and the defaults of _TEMPLATE_TRACES (the same
    look for the figures lcviz draws), built once."""
    import plotly.graph_objects as go
    import plotly.io as pio

    full = pio.templates["plotly_white"]
    layout, data = full.layout.to_plotly_json(), full.data.to_plotly_json()
    return go.layout.Template(layout={key: layout[key] for key in _TEMPLATE_LAYOUT},
                              data={trace: data[trace] for trace in _TEMPLATE_TRACES})


def plotly_figure(data=None, layout=None):
    """go.Figure(data, layout) in the course's look: plotly_template and PLOTLY_FONT unless
    `layout` says otherwise. For subplots: make_subplots(..., figure=plotly_figure())."""
    import plotly.graph_objects as go

    return go.Figure(data, {"template": plotly_template(), "font": PLOTLY_FONT, **(layout or {})})


def plotly_titled(fig, title, xaxis, yaxis, height):
    """A one-panel plotly chart's title (20 px), axis titles, legend text (15 px) and margins."""
    return fig.update_layout(title={"text": title, "font": {"size": 20}}, height=height,
                             xaxis_title=xaxis, yaxis_title=yaxis, legend={"font": {"size": 15}},
                             margin={"l": 70, "r": 20, "t": 60, "b": 60})
