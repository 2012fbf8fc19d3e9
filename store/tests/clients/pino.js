// Pushes COUNT lines through pino-loki (JSON, one stream object per line,
// 2- and 3-tuples mixed: odd lines carry structured metadata).
const pino = require('pino');

const { LOKI_URL, TENANT, RUN } = process.env;
const count = Number(process.env.COUNT || 50);
const transport = pino.transport({
  target: require.resolve('pino-loki'),
  options: {
    host: LOKI_URL,
    labels: { app: 'pino', run: RUN },
    batching: true,
    interval: 0.5,
    headers: { 'X-Scope-OrgID': TENANT },
    structuredMetaKey: 'meta',
  },
});
const logger = pino(transport);
for (let i = 0; i < count; i++) {
  if (i % 2) {
    logger.info({ meta: { trace_id: `trace-${i}` } }, `pino line ${RUN}-${i} done`);
  } else {
    logger.info(`pino line ${RUN}-${i} done`);
  }
}
setTimeout(() => transport.end(), 2000);
