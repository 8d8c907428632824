'use strict';
// The chat page: one WebSocket to the node that served the page, one room at a time.
// Text from users reaches the DOM only through textContent, never as HTML.

const $ = (id) => document.getElementById(id);

let ws = null; // the open connection
let me = null; // {id, user}, from the server's "joined"
let room = ''; // the room we are in, '' when none
let ttl = 45000; // ms a member lasts without news; the server's "joined" says
let leaving = false; // the user closed the connection: no error to show
const members = new Map(); // session id → {user, seen}

function showError(text) {
  $('error').textContent = text;
}

// setState shows where we are: idle (no connection), connecting, joining (a room),
// joined, or connected (in no room, after a refused join).
function setState(state, status) {
  document.body.dataset.state = state;
  $('status').textContent = status;
  const busy = state === 'connecting' || state === 'joining';
  $('name').disabled = state !== 'idle';
  $('room').disabled = busy;
  $('join').disabled = busy;
  $('leave').disabled = state === 'idle' || state === 'connecting';
  $('text').disabled = state !== 'joined';
  $('send').disabled = state !== 'joined';
}

function send(topic, data) {
  if (ws) ws.send(JSON.stringify({ topic, data }));
}

function addLine(className, parts) {
  const log = $('log');
  const li = document.createElement('li');
  li.className = className;
  for (const [cls, text] of parts) {
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = text;
    li.append(span);
  }
  log.append(li);
  while (log.children.length > 500) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function notice(text) {
  addLine('notice', [['what', text]]);
}

function renderMembers() {
  const list = [...members].sort(([idA, a], [idB, b]) =>
    a.user.localeCompare(b.user) || (idA < idB ? -1 : idA > idB ? 1 : 0));
  const ul = $('members');
  ul.replaceChildren();
  for (const [id, m] of list) {
    const li = document.createElement('li');
    li.dataset.id = id;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = m.user;
    li.append(name);
    if (me && id === me.id) {
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = '(you)';
      li.append(you);
    }
    ul.append(li);
  }
}

// seen records news of a member; it returns whether the member is new to us.
function seen(id, user, now) {
  const known = members.has(id);
  members.set(id, { user, seen: now });
  return !known;
}

function enterRoom(name) {
  room = name;
  members.clear();
  $('log').replaceChildren();
  $('room-title').textContent = 'Room ' + name;
  renderMembers();
  setState('joining', 'joining ' + name + '…');
  send('join', { room: name });
}

function roomEvent(e) {
  const now = Date.now();
  switch (e.type) {
    case 'join':
      if (seen(e.id, e.user, now)) notice(me && e.id === me.id ? 'you joined ' + room : e.user + ' joined');
      // Tell the newcomer we are here: it knows nothing of the room yet.
      if (!me || e.id !== me.id) send('here', { room });
      break;
    case 'here':
      seen(e.id, e.user, now);
      break;
    case 'roster':
      for (const p of e.members || []) seen(p.id, p.user, now);
      break;
    case 'leave':
      if (members.delete(e.id)) notice(e.user + ' left');
      break;
    case 'message':
      addLine('msg', [['user', e.user], ['text', e.text]]);
      return;
  }
  renderMembers();
}

function receive(msg) {
  const d = msg.data || {};
  if (msg.topic === 'joined') {
    me = { id: d.id, user: d.user };
    if (d.ttl_ms > 0) ttl = d.ttl_ms;
    if (d.room === room) setState('joined', 'in ' + room + ' as ' + d.user);
    renderMembers();
  } else if (msg.topic === 'error') {
    showError(d.message);
    if (document.body.dataset.state === 'joining') {
      room = '';
      $('room-title').textContent = 'No room';
      setState('connected', 'connected, in no room');
    }
  } else if (msg.topic === 'room:' + room && d.room === room) {
    roomEvent(d);
  }
}

function connect(name, target) {
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const sock = new WebSocket(scheme + location.host + '/ws?user=' + encodeURIComponent(name));
  setState('connecting', 'connecting…');
  sock.onopen = () => {
    ws = sock;
    enterRoom(target);
  };
  sock.onmessage = (ev) => {
    try {
      receive(JSON.parse(ev.data));
    } catch (e) {
      console.error('bad message', ev.data, e);
    }
  };
  sock.onclose = (ev) => {
    ws = null;
    me = null;
    room = '';
    members.clear();
    renderMembers();
    $('room-title').textContent = 'No room';
    setState('idle', 'not connected');
    if (!leaving && !$('error').textContent) {
      showError('connection closed (' + ev.code + (ev.reason ? ': ' + ev.reason : '') + ')');
    }
    leaving = false;
  };
}

$('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  showError('');
  const target = $('room').value.trim().toLowerCase();
  if (ws) {
    if (target !== room) {
      if (room) send('leave', { room });
      enterRoom(target);
    }
    return;
  }
  const name = $('name').value;
  // A refused WebSocket shows the page no reason: ask the server first.
  let res;
  try {
    res = await fetch('check?user=' + encodeURIComponent(name));
  } catch (e) {
    showError('cannot reach the server: ' + e.message);
    return;
  }
  if (res.status !== 204) {
    showError((await res.text()).trim());
    return;
  }
  connect(name, target);
});

$('leave').addEventListener('click', () => {
  if (!ws) return;
  leaving = true;
  ws.close(1000, 'left');
});

$('say-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  if (!text || !room) return;
  send('chat', { room, text });
  $('text').value = '';
});

// Forget members no roster has mentioned for ttl: their node is gone or cut off.
setInterval(() => {
  const limit = Date.now() - ttl;
  let changed = false;
  for (const [id, m] of members) {
    if ((!me || id !== me.id) && m.seen < limit) {
      members.delete(id);
      notice(m.user + ' is gone (no news from their server)');
      changed = true;
    }
  }
  if (changed) renderMembers();
}, 1000);

setState('idle', 'not connected');
