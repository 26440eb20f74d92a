"""The LOGGING setting: one console handler, text or JSON lines (LOG_FORMAT), never a request's query string."""

from pythonjsonlogger.core import RESERVED_ATTRS


def logging_config(log_format: str, level: str) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                # Django's loggers attach the request, whose repr holds the query string (?token=): leave it out.
                "reserved_attrs": [*RESERVED_ATTRS, "request"],
            },
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        # Our request log replaces Django's, which would repeat each failed request with its query string.
        "loggers": {"django.request": {"level": "ERROR"}},
    }
