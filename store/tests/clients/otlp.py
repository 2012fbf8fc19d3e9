"""Pushes COUNT log records over OTLP/HTTP (protobuf) with the OpenTelemetry SDK."""
import logging
import os

from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

url, tenant, run = os.environ["LOKI_URL"], os.environ["TENANT"], os.environ["RUN"]
count = int(os.environ.get("COUNT", "50"))
provider = LoggerProvider(
    resource=Resource.create({"service.name": "otlp-" + run, "k8s.namespace.name": "shop", "host.name": "node-1"})
)
set_logger_provider(provider)
exporter = OTLPLogExporter(endpoint=url + "/otlp/v1/logs", headers={"X-Scope-OrgID": tenant})
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
logger = logging.getLogger("otlp")
logger.setLevel(logging.INFO)
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
for i in range(count):
    logger.info("otlp line %s-%d done", run, i, extra={"order.id": i})
provider.force_flush()
provider.shutdown()
