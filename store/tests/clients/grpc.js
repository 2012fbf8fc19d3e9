// Pushes COUNT lines over gRPC (logproto.Pusher/Push) with loki-grpc-client.
const loki = require('loki-grpc-client');

const { GRPC_ADDR, TENANT, RUN } = process.env;
const count = Number(process.env.COUNT || 50);
const client = new loki.PusherClient(GRPC_ADDR, loki.createInsecureCredentials());
const req = new loki.PushRequest();
const stream = new loki.StreamAdapter();
stream.setLabels(`{app="grpc", run="${RUN}"}`);
const now = Date.now();
for (let i = 0; i < count; i++) {
  const ts = new loki.Timestamp();
  ts.setSeconds(Math.floor(now / 1000));
  ts.setNanos((now % 1000) * 1e6 + i);
  const e = new loki.EntryAdapter();
  e.setTimestamp(ts);
  e.setLine(`grpc line ${RUN}-${i} done`);
  stream.addEntries(e);
}
req.addStreams(stream);
client.push(req, loki.createOrgIdMetadata(TENANT), (err) => {
  if (err) {
    console.error('gRPC push failed', err);
    process.exitCode = 2;
  }
  client.close();
});
