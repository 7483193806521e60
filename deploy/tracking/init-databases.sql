-- The registry/tracking database is created by POSTGRES_DB; the auth app gets its own.
CREATE DATABASE mlflow_auth;
