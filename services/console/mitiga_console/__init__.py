"""The web console: models, a model's health, alerts, forecasts, upload and retraining in a browser, read only
through the services' APIs and the model store."""
