"""Pushes COUNT lines with loki-logger-handler (gzip JSON v1 with extra keys)."""
import logging
import os
import time

from loki_logger_handler.loki_logger_handler import LokiLoggerHandler

url, tenant, run = os.environ["LOKI_URL"], os.environ["TENANT"], os.environ["RUN"]
count = int(os.environ.get("COUNT", "50"))
handler = LokiLoggerHandler(
    url=url + "/loki/api/v1/push",
    labels={"app": "llh", "run": run},
    additional_headers={"X-Scope-OrgID": tenant},
    timeout=1,
    compressed=True,
    enable_structured_loki_metadata=True,
    loki_metadata={"env": "test"},
    enable_self_errors=True,
)
logger = logging.getLogger("llh")
logger.setLevel(logging.INFO)
logger.addHandler(handler)
for i in range(count):
    logger.info("llh line %s-%d done", run, i)
time.sleep(3)
handler.flush() if hasattr(handler, "flush") else None
time.sleep(1)
