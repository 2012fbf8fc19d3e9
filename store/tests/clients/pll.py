"""Pushes COUNT lines with python-logging-loki (legacy /api/prom/push, v0 JSON)."""
import logging
import os
import warnings

warnings.simplefilter("ignore")
import logging_loki  # noqa: E402

url, tenant, run = os.environ["LOKI_URL"], os.environ["TENANT"], os.environ["RUN"]
count = int(os.environ.get("COUNT", "50"))
handler = logging_loki.LokiHandler(
    url=url + "/api/prom/push",
    tags={"app": "pll", "run": run},
    headers={"X-Scope-OrgID": tenant},
) if "headers" in logging_loki.LokiHandler.__init__.__code__.co_varnames else None
if handler is None:
    # 0.3.1 has no headers argument: set the tenant on its requests session.
    handler = logging_loki.LokiHandler(url=url + "/api/prom/push", tags={"app": "pll", "run": run})
    handler.emitter.session.headers["X-Scope-OrgID"] = tenant
logger = logging.getLogger("pll")
logger.setLevel(logging.INFO)
logger.addHandler(handler)
for i in range(count):
    logger.info("pll line %s-%d done", run, i)
