// Pushes COUNT lines through winston-loki (protobuf + snappy, its default).
// Each line carries the token `${RUN}-${i}` so the test can find it.
const winston = require('winston');
const LokiTransport = require('winston-loki');

const { LOKI_URL, TENANT, RUN } = process.env;
const count = Number(process.env.COUNT || 50);
const transport = new LokiTransport({
  host: LOKI_URL,
  labels: { app: 'winston', run: RUN },
  json: false,
  batching: true,
  interval: 0.5,
  headers: { 'X-Scope-OrgID': TENANT },
  onConnectionError: (err) => {
    console.error('winston-loki connection error', err);
    process.exitCode = 2;
  },
});
const logger = winston.createLogger({ level: 'info', transports: [transport] });
for (let i = 0; i < count; i++) {
  logger.info(`winston line ${RUN}-${i} done`, { user: 'bob', i });
}
setTimeout(async () => {
  if (transport.flush) await transport.flush();
  if (transport.close) transport.close();
  setTimeout(() => process.exit(), 500);
}, 2000);
