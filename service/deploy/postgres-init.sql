-- Runs once, when the PostgreSQL volume is first initialised (docker-entrypoint-initdb.d).
-- One database each, so that the service's and MLflow's schema migrations never meet:
-- optistudy (the service, POSTGRES_DB), optuna (Optuna's trial ledger), mlflow (tracking).
CREATE DATABASE optuna;
CREATE DATABASE mlflow;
