// The checks every JavaScript client runs against the livepoll server of interop_test.go.
// It uses only the WHATWG WebSocket API, so the same module runs in a browser page and in
// node with the ws package's WebSocket. It reports what it saw; the Go test asserts.

const STEP_MS = 10000;

// pattern returns n ASCII characters that JSON leaves as they are, varied enough that a
// dropped or reordered chunk of a large message shows.
export function pattern(n) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_';
  const parts = [];
  for (let i = 0; i < n; i += 4096) {
    let chunk = '';
    for (let j = i; j < Math.min(n, i + 4096); j++) chunk += alphabet[(j * 7 + (j >> 12)) % alphabet.length];
    parts.push(chunk);
  }
  return parts.join('');
}

function withTimeout(promise, what) {
  let timer;
  const t = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ error: `timed out after ${STEP_MS} ms waiting for ${what}` }), STEP_MS);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// conn wraps a WebSocket: next() resolves with the next message ({text, binary}) or, once
// the connection has closed, with {closed: {code, reason, wasClean}}.
class Conn {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.addEventListener('close', (e) => {
        this.closeInfo = { code: e.code, reason: e.reason, wasClean: e.wasClean };
        resolve(this.closeInfo);
        for (const w of this.waiters.splice(0)) w({ closed: this.closeInfo });
      });
    });
    ws.addEventListener('message', (e) => {
      const binary = typeof e.data !== 'string';
      const text = binary ? new TextDecoder().decode(e.data) : e.data;
      const m = { text, binary };
      const w = this.waiters.shift();
      if (w) w(m);
      else this.queue.push(m);
    });
  }

  next(what) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    if (this.closeInfo) return Promise.resolve({ closed: this.closeInfo });
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), what);
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }
}

function open(WebSocket, url) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const c = new Conn(ws);
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(c));
      ws.addEventListener('error', () => reject(new Error(`cannot open ${url}`)));
    }),
    `open ${url}`,
  ).then((v) => {
    if (v && v.error) throw new Error(v.error);
    return v;
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// runChecks runs the whole sequence and returns the report. ping, when the client's API
// has one, is called with the raw WebSocket and resolves with {ok, payload} or {error}.
export async function runChecks({ WebSocket, url, name, ping, idleMs }) {
  const r = { client: name };
  const b = await open(WebSocket, `${url}?name=${name}-b`);
  b.send({ topic: 'subscribe', data: { topic: 'room' } });
  r.bSubscribed = await b.next('b subscribed');

  const a = await open(WebSocket, `${url}?name=${name}-a`);
  r.extensions = a.ws.extensions;
  a.send({ topic: 'subscribe', data: { topic: 'room' } });
  r.subscribed = await a.next('subscribed');

  a.send({ topic: 'publish', data: { topic: 'room', data: { text: '<hi> é ☃' } } });
  r.published = await a.next('published');
  r.bPublished = await b.next('b published');

  a.ws.send('{"topic":"echo","data":[1, 2,  3]}');
  r.echo = await a.next('echo');

  a.ws.send(new TextEncoder().encode(JSON.stringify({ topic: 'echo', data: { binary: true } })));
  r.binaryEcho = await a.next('binary echo');

  const big = pattern(1 << 20);
  a.send({ topic: 'echo', data: big });
  const m = await a.next('1 MiB echo');
  r.big = m.text === undefined ? { error: JSON.stringify(m) } : {
    len: m.text.length,
    equal: m.text === JSON.stringify({ topic: 'echo', data: big }),
    binary: m.binary,
  };

  if (ping) r.ping = await withTimeout(ping(a.ws), 'pong');

  // Silent for longer than the server's IdleTimeout: only answering its pings keeps the
  // connection open.
  await sleep(idleMs);
  a.send({ topic: 'echo', data: 'after idle' });
  r.afterIdle = await a.next('echo after idle');

  b.send({ topic: 'close' });
  r.bClose = await withTimeout(b.closed, 'server close');

  a.ws.close(1000, 'bye');
  r.close = await withTimeout(a.closed, 'client close');
  return r;
}
