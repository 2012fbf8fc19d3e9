// Pushes COUNT lines through winston-loki (protobuf + snappy, its default).
// Each line carries the token `${RUN}-${i}` so the test can find it.
const fs = require('fs');
const https = require('https');
const winston = require('winston');
const LokiTransport = require('winston-loki');

// Over TLS (LOKI_URL https://...): the CA, and a client certificate for
// stores that require one; BASIC_AUTH is `user:token`.
const tls = process.env.CA_FILE
  ? {
      httpsAgent: new https.Agent({
        ca: fs.readFileSync(process.env.CA_FILE),
        cert: process.env.CERT_FILE ? fs.readFileSync(process.env.CERT_FILE) : undefined,
        key: process.env.KEY_FILE ? fs.readFileSync(process.env.KEY_FILE) : undefined,
      }),
    }
  : {};
const auth = process.env.BASIC_AUTH ? { basicAuth: process.env.BASIC_AUTH } : {};

const { LOKI_URL, TENANT, RUN } = process.env;
const count = Number(process.env.COUNT || 50);
const transport = new LokiTransport({
  host: LOKI_URL,
  labels: { app: 'winston', run: RUN },
  json: false,
  batching: true,
  interval: 0.5,
  headers: { 'X-Scope-OrgID': TENANT },
  ...tls,
  ...auth,
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
