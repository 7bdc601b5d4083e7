"""Facts stated once: the paper's cells and grids live in rnnopt.paper, the others read them."""

from __future__ import annotations

from rnnopt import cells, paper, storage
from rnnopt.evolve import config
from rnnopt.hpo import space
from rnnopt.report.analysis import GATE_PARAMS


def test_the_papers_cells_and_grids_have_one_home() -> None:
    assert space.PAPER_CELLS is paper.CELL_ORDER
    for name in ("lr", "clip_norm", "init_scale", "layers"):
        assert tuple(space.PAPER_SPACE[name]["grid"]) == paper.GRIDS[name]
    for name, grid in config.GRID.items():
        assert grid is paper.GRIDS[name]
    assert max(paper.GRIDS["layers"]) == cells.MAX_LAYERS


def test_gate_names_optimizers_and_the_default_storage_have_one_home() -> None:
    from rnnopt.evolve.__main__ import parser
    from rnnopt.train import OPTIMIZERS

    assert GATE_PARAMS is space.GATE_NAMES
    assert config.OPTIMIZERS is OPTIMIZERS
    assert parser().parse_args([])._storage_default == storage.DEFAULT_URL
