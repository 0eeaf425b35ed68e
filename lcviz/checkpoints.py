"""The one home of data/: checkpoints (weights + JSON) and result files (benchmarks).

    load_checkpoint("passkey-full")   # (model in eval mode, info dict)
    load_results("attention")         # data/bench-attention.json as a dict

Every file read through here is recorded in FILES_READ, so `python -m lcviz.notebooks` can stamp
each notebook with the data files it really read (a changed checkpoint makes it stale).
"""

import json
import platform
from pathlib import Path

import torch

from lcviz.model import ModelConfig, TinyTransformer

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "data"
FILES_READ = set()  # absolute paths of the data files read by this process


def _record(path):
    FILES_READ.add(str(Path(path).resolve()))


def checkpoint_paths(name, data_dir=DATA_DIR):
    """(data/<name>.pt, data/<name>.json)."""
    return Path(data_dir) / f"{name}.pt", Path(data_dir) / f"{name}.json"


def save_checkpoint(name, model, metrics, data_dir=DATA_DIR):
    """Write data/<name>.pt (config + weights) and data/<name>.json (config + metrics)."""
    weights_path, info_path = checkpoint_paths(name, data_dir)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    beacon = model.settings() if hasattr(model, "settings") else None
    info = {"recipe": name, "config": model.config.to_dict(), "beacon": beacon, "metrics": metrics,
            "rebuild": f"python -m lcviz.train {name}", "torch": torch.__version__.split("+")[0]}
    torch.save({"config": model.config.to_dict(), "beacon": beacon,
                "state_dict": model.state_dict()}, weights_path)
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    return weights_path


def load_weights(name, build, data_dir=DATA_DIR):
    """(module in eval mode, info dict) for data/<name>.pt: build(saved) makes the module from
    the saved dict ("config", ...), then the weights are loaded into it. A missing file names
    the command that rebuilds it; info is {} without data/<name>.json."""
    weights_path, info_path = checkpoint_paths(name, data_dir)
    if not weights_path.exists():
        raise FileNotFoundError(f"{weights_path} is missing: rebuild it with "
                                f"`python -m lcviz.train {name}` (`python -m lcviz.train --list` "
                                f"shows the recipes)")
    saved = torch.load(weights_path, map_location="cpu", weights_only=True)
    _record(weights_path)
    model = build(saved)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    info = {}
    if info_path.exists():
        info = json.loads(info_path.read_text())
        _record(info_path)
    return model, info


def _tiny_or_beacon(saved):
    config = ModelConfig(**saved["config"])
    if saved.get("beacon") is None:
        return TinyTransformer(config)
    from lcviz.beacons import BeaconTransformer  # here: only notebooks that load a beacon model
    return BeaconTransformer(config, **saved["beacon"])  # depend on lcviz.beacons


def load_checkpoint(name, data_dir=DATA_DIR):
    """(TinyTransformer or BeaconTransformer in eval mode, info dict) for data/<name>.pt."""
    return load_weights(name, _tiny_or_beacon, data_dir)


def load_info(name, data_dir=DATA_DIR):
    """data/<name>.json alone (config and recorded metrics), without loading the weights."""
    path = checkpoint_paths(name, data_dir)[1]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: rebuild it with `python -m lcviz.train {name}`")
    _record(path)
    return json.loads(path.read_text())


def machine_info():
    """What a benchmark's numbers were measured on."""
    return {"python": platform.python_version(), "torch": torch.__version__.split("+")[0],
            "threads": torch.get_num_threads(), "machine": platform.machine()}


def results_path(name, data_dir=DATA_DIR):
    return Path(data_dir) / f"bench-{name}.json"


def save_results(name, results, data_dir=DATA_DIR):
    """Write data/bench-<name>.json with the machine it was measured on."""
    path = results_path(name, data_dir)
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), **results},
                               indent=1) + "\n")
    return path


def load_results(name, data_dir=DATA_DIR):
    """The saved results of benchmark `name`; a missing file names the command that makes it."""
    path = results_path(name, data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python -m lcviz.bench {name}`")
    _record(path)
    return json.loads(path.read_text())
