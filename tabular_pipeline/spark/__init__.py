"""The Spark engine: sessions, tables, feature encoding, training, export to the pandas engine's
model, and evaluation on the cluster."""
