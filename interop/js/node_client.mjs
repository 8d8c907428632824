// Runs checks.mjs with the ws package's client against the server URL given as the only
// argument and prints the report as one line of JSON. Driven by ../node_test.go.
import WebSocket from 'ws';
import { runChecks } from './checks.mjs';

const [url, idleMs] = process.argv.slice(2);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: 'node client: overall timeout' }));
  process.exit(2);
}, 60000);

function ping(ws) {
  // ws's own API: ping with a payload, the pong event carries it back.
  const payload = 'interop-ping';
  return new Promise((resolve) => {
    ws.once('pong', (data) => resolve({ ok: true, payload: data.toString() }));
    ws.ping(payload);
  });
}

try {
  const r = await runChecks({ WebSocket, url, name: 'ws', ping, idleMs: Number(idleMs) });
  r.version = JSON.parse(
    (await import('node:fs')).readFileSync(new URL('./node_modules/ws/package.json', import.meta.url)),
  ).version;
  console.log(JSON.stringify(r));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
}
clearTimeout(timer);
