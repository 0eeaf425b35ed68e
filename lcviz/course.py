"""The course table: every topic once, with the one slug that names all of its parts.

A topic with slug S has a notebook notebooks/NN-S.ipynb, its code in lcviz/S.py, its figures in
lcviz/plots/S.py, its exercise checkers in lcviz/checks/S.py, its app page in lcviz/app/pages/S.py
and its tests in tests/test_S.py. The app's page list and the README's course map come from this
table, and tests/test_course.py fails when a topic lacks one of its parts.

    python -m lcviz.course          # print the README course map
"""

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTRO_NOTEBOOK = "notebooks/00-start-here.ipynb"  # course map, environment check; not a topic


@dataclass(frozen=True)
class Topic:
    number: int
    slug: str
    title: str
    summary: str  # what a learner builds and measures

    @property
    def notebook(self):
        return f"notebooks/{self.number:02d}-{self.slug}.ipynb"

    def parts(self):
        """{part: path relative to the repository} of every file this topic must have."""
        return {"notebook": self.notebook, "module": f"lcviz/{self.slug}.py",
                "figures": f"lcviz/plots/{self.slug}.py", "checkers": f"lcviz/checks/{self.slug}.py",
                "page": f"lcviz/app/pages/{self.slug}.py", "tests": f"tests/test_{self.slug}.py"}


TOPICS = (
    Topic(1, "transformer", "Tiny transformer",
          "attention by hand (= torch SDPA to 1e-5), a decoder-only model trained on Python source"),
    Topic(2, "masks", "Attention masks",
          "causal, sliding-window, dilated, strided, global+local, random, block-sparse masks"),
    Topic(3, "receptive", "Receptive fields",
          "exact and effective receptive fields of stacked windowed layers"),
    Topic(4, "memory", "Memory and speed",
          "O(n·w) sliding-window attention and tiled online softmax against dense SDPA"),
    Topic(5, "rope", "RoPE scaling",
          "RoPE, extrapolation blow-up, PI, NTK, dynamic NTK, YaRN, Llama-3 scaling"),
    Topic(6, "passkey", "Passkey retrieval",
          "passkey retrieval and needle grids on trained tiny models"),
    Topic(7, "beacons", "Activation beacons",
          "activation beacons (stepwise condensing, one model for every ratio) against a trained "
          "window, H2O, TOVA and SnapKV at equal KV budget, by key distance; where beacons fail"),
    Topic(8, "streaming", "Streaming and KV-cache eviction",
          "attention sinks, StreamingLLM with rolling positions, H2O, TOVA, SnapKV and re-computation "
          "at one budget: loss 8x past the training length, cost per token, strided evaluation, "
          "passkey retrieval under a budget"),
    Topic(9, "ring", "Ring attention",
          "exact attention split over torch.distributed processes: log-sum-exp merge, causal "
          "layouts (contiguous, zigzag, striped), gradients and memory per rank"),
    Topic(10, "subquadratic", "Sub-quadratic attention",
          "two-level hierarchical attention (= dense block-mean keys), linear attention in four "
          "forms, a selective scan (Mamba) and retention; cost against length (to 8,192 tokens), "
          "MQAR recall against the number of pairs at equal state sizes, and passkey retrieval by "
          "key distance"),
    Topic(11, "recurrent", "Recurrent memory across segments",
          "Transformer-XL's segment cache and Infini-attention's compressive memory (linear and "
          "delta rules): retrieval error without training, passkey across segments, compressions"),
    Topic(12, "longcontext", "Compare techniques",
          "one benchmark of every technique: needle grid (length x depth), multi-key recall, "
          "variable tracking, lost in the middle; effective length, memory and time per "
          "technique, cost at 50K-200K tokens"),
    Topic(13, "context", "Adaptive context management",
          "last-k, token buffer, counted and uncounted summary buffers, MemGPT memory pressure and "
          "BM25 retrieval in a token budget: which planted facts survive 20-500 turns"),
)
BY_SLUG = {topic.slug: topic for topic in TOPICS}


def missing_parts(topic, root=ROOT):
    """The parts of `topic` (as in Topic.parts) whose file does not exist under `root`."""
    return [part for part, path in topic.parts().items() if not (Path(root) / path).exists()]


def course_map_markdown():
    """The README's course map, one row per notebook."""
    rows = ["| # | Notebook | What you build and measure |", "|---|---|---|",
            (f"| 00 | `{INTRO_NOTEBOOK}` | course map, environment check, how exercises check "
             "themselves |")]
    rows += [f"| {t.number:02d} | `{t.notebook}` | **{t.title}** (`lcviz/{t.slug}.py`): "
             f"{t.summary} |" for t in TOPICS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(course_map_markdown())
