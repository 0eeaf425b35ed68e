"""What every figure shares. Figure functions (lcviz/plots/<topic>.py) return a figure and never
call show(), so the notebooks and the Streamlit app draw with the same code."""

from matplotlib.figure import Figure


def new_figure(width=6.0, height=4.0, layout="constrained"):
    """A Figure not registered with pyplot's global state (safe in a long-running app).
    layout=None skips the layout engine, for figures that place their axes by hand."""
    return Figure(figsize=(width, height), dpi=100, layout=layout)
