"""Drift counts on a Spark cluster: one aggregation over the scored table, nothing collected but
the counts (a few numbers per column)."""

from __future__ import annotations

from tabular_pipeline.monitoring.drift import DriftCounter


def count_on_spark(frame, counter: DriftCounter) -> None:
    """Count `frame` (the model's input columns) on the profile's bins, in one Spark job.

    A number's bin is how many bin edges are at or below it, as `numpy.searchsorted(...,
    side="right")` counts it on the pandas engine; text and booleans are compared as Spark casts
    them to strings (`true`/`false`), as the pandas engine writes them.
    """
    from pyspark.sql import functions as F

    expressions, layout = [F.count(F.lit(1)).alias("rows")], {}
    for index, (name, spec) in enumerate(counter.profile["columns"].items()):
        if name not in frame.columns:
            continue
        column = F.col(f"`{name}`")
        if spec["kind"] == "number":
            value = column.cast("double")
            missing = value.isNull() | F.isnan(value)
            bucket = sum((F.when(value >= F.lit(edge), 1).otherwise(0) for edge in spec["edges"]), F.lit(0))
            names = [f"b{index}_{position}" for position in range(len(spec["edges"]) + 1)]
            expressions += [
                F.sum(F.when(~missing & (bucket == position), 1).otherwise(0)).alias(alias)
                for position, alias in enumerate(names)
            ]
        else:
            text = column.cast("string")
            missing = text.isNull()
            names = [f"c{index}_{position}" for position in range(len(spec["top"]))]
            expressions += [
                F.sum(F.when(text == F.lit(value), 1).otherwise(0)).alias(alias)
                for value, alias in zip(spec["top"], names, strict=True)
            ]
        expressions.append(F.sum(F.when(missing, 1).otherwise(0)).alias(f"m{index}"))
        layout[name] = (index, names)
    totals = frame.agg(*expressions).collect()[0].asDict()
    rows = int(totals["rows"] or 0)
    for name, (index, names) in layout.items():
        spec = counter.profile["columns"][name]
        counts = [int(totals[alias] or 0) for alias in names]
        missing = int(totals[f"m{index}"] or 0)
        if spec["kind"] == "number":
            counter.set_counts(name, rows, missing, counts, {})
        else:
            # Values beyond the top ones are counted as the difference; the counter reads them as "other".
            values = dict(zip(spec["top"], counts, strict=True))
            rest = rows - missing - sum(counts)
            counter.set_counts(name, rows, missing, None, {**values, "\0rest": rest} if rest else values)
