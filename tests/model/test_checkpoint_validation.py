"""Hand-made and tampered checkpoints: each is a CheckpointError naming the file and the
problem, raised while loading, so a resume from one creates no MLflow run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from capx.checkpoint import CheckpointError, check_compatible, load_checkpoint, save_checkpoint
from capx.registry import UPDATE_RULES
from tests.support import VOCAB, small_solver, word_tokenizer_dict
from tests.support import run_in_process, read_runs


def _entries(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _header(arrays: dict[str, np.ndarray]) -> dict:
    return json.loads(str(arrays["header_json"]))


def _with_header(arrays: dict[str, np.ndarray], change) -> None:
    header = _header(arrays)
    change(header)
    arrays["header_json"] = np.asarray(json.dumps(header))


def _nan_at_first(array: np.ndarray) -> np.ndarray:
    out = array.copy()
    out.flat[0] = np.nan
    return out


def _set(key: str, make):
    return lambda a: a.__setitem__(key, make(a[key]))


def _header_set(*keys_and_value):
    *keys, value = keys_and_value

    def change(header):
        node = header
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return lambda a: _with_header(a, change)


# (what is tampered, how, a pattern the error must contain)
TAMPERINGS = [
    ("int64 weights", _set("params/W_embed", lambda w: np.ones(w.shape, np.int64)),
     "parameter 'W_embed' has dtype int64, not float32 or float64"),
    ("NaN weights", _set("params/Wx", _nan_at_first), "parameter 'Wx' has 1 non-finite"),
    ("inf weights", _set("params/b_vocab", lambda b: b + np.inf),
     "parameter 'b_vocab' has .* non-finite"),
    ("reshaped weights", _set("params/Wh", lambda w: w.reshape(-1)),
     r"parameter 'Wh' has shape \(\d+,\), the header says"),
    ("negative iteration", _header_set("iteration", -1), "iteration is -1, not a non-negative"),
    ("fractional epoch", _header_set("epoch", 1.5), "epoch is 1.5, not a non-negative integer"),
    ("2-d loss history", _set("loss_history", lambda h: h.reshape(1, -1)),
     "loss_history is a 2-d float64 array"),
    ("integer loss history", _set("loss_history", lambda h: h.astype(np.int64)),
     "loss_history is a 1-d int64 array"),
    ("short Adam moment", _set("optim/flat/m", lambda m: m[:-3]),
     r"optimiser state of parameter 'flat', key 'm' has shape \(\d+,\), the parameter's"),
    ("NaN Adam moment", _set("optim/flat/v", _nan_at_first),
     "parameter 'flat', key 'v' has 1 non-finite"),
    ("negative Adam step", _header_set("optim_configs", "flat", "t", -4),
     "key 't' is -4, not a non-negative step count"),
    ("inf learning rate", _header_set("optim_configs", "flat", "learning_rate", 1e999),
     "key 'learning_rate' is inf, not a finite number"),
    ("state for an unknown parameter",
     lambda a: _with_header(a, lambda h: h["optim_configs"].__setitem__("W_extra", {})),
     "optimiser state for 'W_extra', which is not a parameter"),
    ("short RNG key", _set("rng/1", lambda k: k[:600]),
     r"rng_state key has shape \(600,\) .* not \(624,\) uint32"),
    ("RNG key of floats", _set("rng/1", lambda k: k.astype(np.float64)),
     "rng_state key .* dtype float64"),
    ("RNG position out of range", _header_set("rng_state", "__list__", 2, 5000),
     "rng_state position is 5000"),
    ("RNG state cut short",
     _header_set("rng_state", "__list__", [{"__array__": "rng/1", "scalar": False}]),
     "rng_state is tuple of 1 items"),
    ("header JSON", _set("header_json", lambda _: np.asarray('{"format": "capx-checkp')),
     "'header_json' entry does not parse"),
    ("tokenizer JSON", _set("tokenizer_json", lambda _: np.asarray("{'name': word}")),
     "'tokenizer_json' entry does not parse"),
    ("config YAML", _set("config_yaml", lambda _: np.asarray("solver: [1, 2\nseed: 0")),
     "'config_yaml' entry does not parse"),
    ("config YAML that is a list", _set("config_yaml", lambda _: np.asarray("- 1\n- 2\n")),
     "'config_yaml' entry is a list, not a mapping"),
    ("header refers to a missing entry", lambda a: a.pop("optim/flat/m"),
     "refers to entry 'optim/flat/m', which the file lacks"),
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A real checkpoint of a solver one epoch in (Adam moments and RNG state filled)."""
    solver = small_solver()
    solver.num_epochs = 1
    solver.train()
    path = tmp_path_factory.mktemp("good") / "good.npz"
    return save_checkpoint(path, solver.state_dict(), word_tokenizer_dict(), "seed: 0\n",
                           {"run_id": "abc"})


def _tampered(good: Path, folder: Path, tamper) -> Path:
    arrays = _entries(good)
    tamper(arrays)
    path = folder / "tampered.npz"
    np.savez(path, **arrays)
    return path


def test_rewriting_without_changes_still_loads_and_resumes(trained, tmp_path):
    """The control for the table below: the rewrite itself breaks nothing."""
    path = _tampered(trained, tmp_path, lambda arrays: None)
    loaded, original = load_checkpoint(path), load_checkpoint(trained)
    assert loaded.state["iteration"] == original.state["iteration"] > 0
    reference, resumed = small_solver(), small_solver(seed=99)
    reference.train()
    resumed.load_state_dict(loaded.state)
    resumed.train()
    assert resumed.loss_history == reference.loss_history
    np.testing.assert_array_equal(resumed.model.params.flat, reference.model.params.flat)


@pytest.mark.parametrize("rule", ["sgd", "sgd_momentum", "rmsprop", "adam"])
def test_every_update_rules_own_state_passes_the_checks(tmp_path, rule):
    solver = small_solver()
    solver.update_rule_name, solver.update_rule = rule, UPDATE_RULES.get(rule)
    solver.num_epochs = 1
    solver.train()
    path = save_checkpoint(tmp_path / "c.npz", solver.state_dict(), word_tokenizer_dict(), "")
    saved = load_checkpoint(path).state["optim_configs"]["flat"]
    assert set(saved) == set(solver.optim_configs["flat"])


@pytest.mark.parametrize("what, tamper, problem", TAMPERINGS, ids=[t[0] for t in TAMPERINGS])
def test_a_tampered_checkpoint_is_rejected_naming_the_problem(trained, tmp_path, what, tamper,
                                                              problem):
    path = _tampered(trained, tmp_path, tamper)
    with pytest.raises(CheckpointError, match=problem) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)


def test_non_finite_parameters_are_never_written_over_a_good_checkpoint(trained, tmp_path):
    path = tmp_path / "last.npz"
    shutil.copy(trained, path)
    before = path.read_bytes()
    state = load_checkpoint(trained).state
    state["params"]["W_vocab"] = _nan_at_first(state["params"]["W_vocab"])
    with pytest.raises(CheckpointError, match="W_vocab are not finite.*kept"):
        save_checkpoint(path, state, word_tokenizer_dict(), "")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.npz"]


def test_resuming_from_a_bad_checkpoint_creates_no_run(workdir):
    """Each bad file fails while loading, before the store is touched: the run count stays 1
    and the run that wrote the checkpoint keeps its status."""
    assert run_in_process(workdir, name="first") == "FINISHED"
    good = workdir / "outputs" / "first" / "checkpoints" / "last.npz"
    client, (first,) = read_runs(workdir)
    for tamper, problem in [(_set("params/Wx", _nan_at_first), "non-finite"),
                            (_set("optim/flat/m", lambda m: m[:-1]), "key 'm' has shape"),
                            (_set("rng/1", lambda k: k[:100]), "rng_state key has shape"),
                            (_set("config_yaml", lambda _: np.asarray("a: [")), "does not parse")]:
        bad = _tampered(good, workdir, tamper)
        with pytest.raises(CheckpointError, match=problem):
            run_in_process(workdir, f"resume={bad}", name="resumed")
        _, runs = read_runs(workdir)
        assert [r.info.run_id for r in runs] == [first.info.run_id]
    assert client.get_run(first.info.run_id).info.status == "FINISHED"


def test_optimiser_state_laid_out_for_another_model_is_refused(trained):
    """State per tensor (a model without a flat buffer) does not fit this model's one buffer."""
    loaded = load_checkpoint(trained)
    loaded.state["optim_configs"] = {"Wx": {"learning_rate": 0.01}}
    with pytest.raises(CheckpointError, match=r"optimiser state for \['Wx'\].*\['flat'\]"):
        check_compatible(loaded, small_solver().model.params, VOCAB)
