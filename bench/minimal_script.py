"""The smallest honest baseline of the pipeline-overhead benchmark: what a data scientist writes by
hand without the project. It loads the table, splits it, fits a default LightGBM and logs the model
in one MLflow run; no evaluation, no registry, no lineage.

    python -m bench.minimal_script --data_path data/breast_cancer.csv
"""

from __future__ import annotations

import click


@click.command()
@click.option("--data_path", required=True)
@click.option("--label_column", default="label")
@click.option("--experiment_name", default="bench-minimal")
def main(data_path: str, label_column: str, experiment_name: str) -> None:
    """Load, split, fit and log, as a notebook would."""
    import lightgbm
    import mlflow
    import pandas as pd
    from sklearn.model_selection import train_test_split

    table = pd.read_csv(data_path)
    features, labels = table.drop(columns=[label_column]), table[label_column]
    text_columns = features.select_dtypes(include=["object", "string"]).columns
    features[text_columns] = features[text_columns].astype("category")
    train_x, test_x, train_y, test_y = train_test_split(features, labels, test_size=0.25, random_state=1)
    mlflow.set_experiment(experiment_name)
    with mlflow.start_run():
        model = lightgbm.LGBMClassifier(random_state=1, verbose=-1).fit(train_x, train_y)
        mlflow.log_metric("test_accuracy", float(model.score(test_x, test_y)))
        info = mlflow.lightgbm.log_model(model, name="model", input_example=test_x.head(5))
    click.echo(info.model_uri)


if __name__ == "__main__":
    main()
