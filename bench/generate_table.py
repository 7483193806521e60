"""Write a generated mixed-type table (see `tabular_pipeline.data.synthetic`) as CSV or Parquet.

python -m bench.generate_table --rows 300000 --columns 30 --output /tmp/large.csv
"""

from __future__ import annotations

from pathlib import Path

import click

from tabular_pipeline.data.synthetic import make_mixed_table


def write_table(rows: int, columns: int, task: str, seed: int, output: Path) -> Path:
    """Generate the table and write it; the suffix of `output` picks CSV or Parquet."""
    table = make_mixed_table(rows, columns, task, seed)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".parquet":
        table.to_parquet(output, index=False)
    else:
        table.to_csv(output, index=False)
    return output


@click.command()
@click.option("--rows", type=int, default=300_000, show_default=True)
@click.option("--columns", type=int, default=30, show_default=True)
@click.option("--task", default="binary", show_default=True, help="binary, multiclass or regression.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--output", type=click.Path(path_type=Path), required=True, help="A .csv or .parquet file.")
def main(rows: int, columns: int, task: str, seed: int, output: Path) -> None:
    """Generate a labelled table with a row id, floats, counts, categories and a flag."""
    click.echo(write_table(rows, columns, task, seed, output))


if __name__ == "__main__":
    main()
