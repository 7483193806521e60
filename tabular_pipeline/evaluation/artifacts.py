"""Where a training run keeps what the promotion gate reads: names only, so the registry code that
reads them does not load the evaluation code (scikit-learn, MLflow's pyfunc) to know them."""

EVALUATION_ARTIFACT_PATH = "evaluation"
# The rows the gate scores both models on: the whole test split, or on the Spark engine a seeded sample.
TEST_SPLIT_FILE = "test.parquet"
# The fingerprints of the training split's rows (`data.row_hashes`): how a later gate tells which
# rows of a challenger's test split this model trained on.
TRAIN_ROWS_FILE = "train_rows.parquet"
# Set when the run kept a sample of its test split for the gate (a large split trained on Spark):
# "<kept> of <all> rows".
TAG_GATE_SAMPLE = "pipeline.gate_test_sample"
