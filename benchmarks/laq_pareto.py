"""Accuracy vs average bits on EMODB: the paper's LAQ across T_margin, and the sensitivity method across
budgets, on the same random splits (a Pareto sweep). Thin wrapper over laq_table's machinery.

    python benchmarks/laq_pareto.py --data emodb --seeds 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import laq_table as lt  # noqa: E402  (pins threads and sets up the paths)
from _common import run_main, write_results  # noqa: E402

from converters.featurize import FeatureCache  # noqa: E402
from converters.pipeline import make_split, prepare  # noqa: E402
from converters.quant import LaqConfig  # noqa: E402
from converters.recipe import load_spec  # noqa: E402
from edge_ser.inputs.vector import VectorKind  # noqa: E402

MARGINS = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12)
BUDGETS = (1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="emodb")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--spec", type=Path, default=None, help="FeatureSpec JSON (default: converters.recipe.DEFAULT_SPEC)"
    )
    args = ap.parse_args()
    recipes = (
        ["fp32", "qat-2", "qat-1"]
        + [f"laq-paper@{m}" for m in MARGINS]
        + [f"sensitivity@{b}" for b in BUDGETS]
    )
    spec = load_spec(args.spec)
    prep = prepare(args.data, spec=spec, cache=FeatureCache(), progress=False)
    runs = [
        lt.run_split(prep, make_split(prep, "random", seed=s), s, recipes, LaqConfig())
        for s in lt.tqdm(range(args.seeds), desc="pareto")
    ]
    rows = lt.summarise(runs, recipes)
    md = [
        f"# Accuracy vs average bits on {args.data.upper()} (random 80/10/10, seeds 0..{args.seeds - 1})",
        "",
        VectorKind(spec).describe()[0].capitalize() + ".",
        "",
    ]
    md += lt.table(rows, "laq-paper@T = the paper's search at T_margin T; sensitivity@B = budget B bits")
    text = "\n".join(md)
    print(text)
    write_results(f"laq_pareto_{args.data}", {"rows": rows, "runs": runs}, text)


if __name__ == "__main__":
    run_main(main)
