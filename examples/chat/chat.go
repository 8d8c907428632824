package main

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/livepoll/livepoll/live"
)

// The protocol, on top of live's {"topic","data"} envelopes.
//
// Client to server (topic: data):
//
//	join:  {"room":"lobby"}              enter a room
//	leave: {"room":"lobby"}              leave it
//	here:  {"room":"lobby"}              answer someone's join: "I am in this room too"
//	chat:  {"room":"lobby","text":"hi"}  say something
//
// Server to one client: "joined" {"room","id","user","ttl_ms"} after its join, with its
// session ID (to recognise its own events) and how long a presence entry lasts without
// news; "error" {"message"} when a request is refused.
//
// Server to a room (topic "room:<name>"): an event, see event.
//
// Presence: see README.md. In short, a join is announced to the room; every member's page
// answers with "here"; every node republishes who of its sessions is in which room every
// refresh interval ("roster"); pages forget a member they have not heard of for ttl; a
// leave (explicit, or the session closing) is announced.

// event is what the room's members receive.
type event struct {
	Type    string   `json:"type"` // join, here, leave, message, roster
	Room    string   `json:"room"`
	ID      string   `json:"id,omitempty"`   // the member's session ID
	User    string   `json:"user,omitempty"` // the member's name
	Text    string   `json:"text,omitempty"` // message
	Members []person `json:"members,omitempty"`
}

// person is a member of a room as pages see it. IDs tell apart two sessions that share a
// name on different nodes.
type person struct {
	ID   string `json:"id"`
	User string `json:"user"`
}

// nodeOptions configures a chat node; the zero value is a single node.
type nodeOptions struct {
	Broker  live.Broker   // shares the rooms with other nodes; nil: this process only
	Refresh time.Duration // roster interval (default 15 s); entries live three times that
	Logger  *slog.Logger  // default slog.Default()
}

// node is the chat on one server: the live.Server, who is connected here and in which
// rooms, and the goroutine that republishes this node's rosters. Each node knows only its
// own sessions; other nodes' members are known to the pages, through the room's events.
type node struct {
	srv     *live.Server
	refresh time.Duration
	log     *slog.Logger

	mu       sync.Mutex
	names    map[string]*live.Session // name key → the session that holds the name here
	sessions map[*live.Session]*member
	rooms    map[string]*room

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// member is a session that has sent its first message and so holds its name.
type member struct {
	id, name, key string
	// rooms is touched only by the session's own OnMessage and OnClose, which never run
	// at the same time.
	rooms map[string]struct{}
}

// room holds a room's local members. Its mu is held while membership changes and while
// the event that reports the change (or a roster) is published, so the events a node
// publishes about a room come in the order of its changes: a page never sees a member
// in a roster after that member's leave.
type room struct {
	mu      sync.Mutex
	refs    int // goroutines holding or waiting for mu; guarded by node.mu
	members map[*live.Session]*member
}

func newNode(opts nodeOptions) *node {
	n := &node{
		refresh:  cmp.Or(opts.Refresh, 15*time.Second),
		log:      cmp.Or(opts.Logger, slog.Default()),
		names:    make(map[string]*live.Session),
		sessions: make(map[*live.Session]*member),
		rooms:    make(map[string]*room),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	n.srv = live.New(live.Options{
		ReadLimit: 64 << 10,
		Broker:    opts.Broker,
		Logger:    n.log,
		OnAuth:    n.onAuth,
		OnMessage: n.onMessage,
		OnClose:   n.onClose,
	})
	go n.refreshLoop()
	return n
}

//go:embed web
var webFiles embed.FS

// handler serves the page on /, the WebSocket on /ws and the name check on /check.
func (n *node) handler() http.Handler {
	web, _ := fs.Sub(webFiles, "web")
	static := http.FileServerFS(web)
	mux := http.NewServeMux()
	mux.Handle("/ws", n.srv.Handler())
	mux.HandleFunc("GET /check", n.serveCheck)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// User text only ever reaches the DOM as text; the policy is a second line.
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		static.ServeHTTP(w, r)
	})
	return mux
}

// onAuth takes the user's name from the query (?user=), as the live docs do, and refuses
// names that are empty, malformed or held by another session on this node. The browser
// sees only the 401: the page asks /check first for the reason.
func (n *node) onAuth(ctx context.Context, r *http.Request) (any, error) {
	name, key, err := userName(r.URL.Query().Get("user"))
	if err != nil {
		return nil, err
	}
	if err := n.nameFree(key, nil); err != nil {
		return nil, err
	}
	return name, nil
}

// serveCheck answers whether onAuth would accept ?user= now: 204, or 401 with the reason.
func (n *node) serveCheck(w http.ResponseWriter, r *http.Request) {
	_, key, err := userName(r.URL.Query().Get("user"))
	if err == nil {
		err = n.nameFree(key, nil)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// nameFree says whether a session other than s holds the name key on this node.
func (n *node) nameFree(key string, s *live.Session) error {
	n.mu.Lock()
	holder := n.names[key]
	n.mu.Unlock()
	if holder != nil && holder != s && !holder.IsClosed() {
		return errNameInUse
	}
	return nil
}

var errNameInUse = errors.New("someone with this name (or one that looks the same) is already connected to this server")

// claim makes s the holder of its name when it sends its first message. Two sessions
// may pass onAuth with one name before either has claimed it: the second to claim is
// refused. Names are claimed here rather than in onAuth because an upgrade can still
// fail after onAuth and nothing would then release the name.
func (n *node) claim(s *live.Session) (*member, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if m := n.sessions[s]; m != nil {
		return m, nil
	}
	name, _ := s.Value().(string)
	_, key, err := userName(name)
	if err != nil {
		return nil, err
	}
	if holder := n.names[key]; holder != nil && holder != s && !holder.IsClosed() {
		return nil, errNameInUse
	}
	m := &member{id: s.ID(), name: name, key: key, rooms: make(map[string]struct{})}
	n.names[key] = s
	n.sessions[s] = m
	return m, nil
}

// release forgets s when it closes and returns what it was.
func (n *node) release(s *live.Session) *member {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.sessions[s]
	if m == nil {
		return nil
	}
	delete(n.sessions, s)
	if n.names[m.key] == s {
		delete(n.names, m.key)
	}
	return m
}

// onMessage is the OnMessage of the live docs' chat: a switch on the topic.
func (n *node) onMessage(ctx context.Context, s *live.Session, topic string, data []byte) {
	m, err := n.claim(s)
	if err != nil {
		n.sendError(s, err)
		s.Close()
		return
	}
	var req struct {
		Room string `json:"room"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(data, &req); err != nil {
		n.sendError(s, fmt.Errorf("%s: data must be a JSON object: %v", topic, err))
		return
	}
	room, err := roomName(req.Room)
	if err != nil {
		n.sendError(s, err)
		return
	}
	switch topic {
	case "join":
		err = n.join(s, m, room)
	case "leave":
		err = n.leave(s, m, room, true)
	case "here":
		err = n.here(m, room)
	case "chat":
		err = n.say(m, room, req.Text)
	default:
		err = fmt.Errorf("unknown topic %q", topic)
	}
	if err != nil {
		n.sendError(s, err)
	}
}

// onClose announces that the closed session left each of its rooms, as the live docs'
// presence example suggests ("you'd need to track which rooms the user was in").
func (n *node) onClose(s *live.Session, err error) {
	m := n.release(s)
	if m == nil {
		return // never sent a message: never joined anything
	}
	for room := range m.rooms {
		_ = n.leave(s, m, room, false)
	}
}

var (
	errNotInRoom   = errors.New("you are not in this room")
	errTooManyRoom = fmt.Errorf("you are in %d rooms already", maxRooms)
	errText        = fmt.Errorf("a message is 1 to %d characters", maxTextRunes)
)

func (n *node) join(s *live.Session, m *member, name string) error {
	r := n.lockRoom(name)
	defer n.unlockRoom(name, r)
	if _, in := m.rooms[name]; !in {
		if len(m.rooms) >= maxRooms {
			return errTooManyRoom
		}
		// Subscribed before the join is published, so the joiner sees its own join: the
		// page takes that as the start of the room's history.
		n.srv.Subscribe(s, roomTopic(name))
		r.members[s] = m
		m.rooms[name] = struct{}{}
	}
	joined, _ := json.Marshal(map[string]any{
		"room": name, "id": m.id, "user": m.name, "ttl_ms": n.ttl().Milliseconds(),
	})
	if err := s.Send(live.Message{Topic: "joined", Data: joined}); err != nil {
		return nil // closed meanwhile: onClose announces the leave
	}
	n.publish(event{Type: "join", Room: name, ID: m.id, User: m.name})
	return nil
}

// leave takes s out of the room; explicit is false from onClose, where live has already
// dropped the session's subscriptions.
func (n *node) leave(s *live.Session, m *member, name string, explicit bool) error {
	r := n.lockRoom(name)
	defer n.unlockRoom(name, r)
	if _, in := m.rooms[name]; !in {
		return errNotInRoom
	}
	delete(m.rooms, name)
	delete(r.members, s)
	if explicit {
		n.srv.Unsubscribe(s, roomTopic(name))
	}
	n.publish(event{Type: "leave", Room: name, ID: m.id, User: m.name})
	return nil
}

func (n *node) here(m *member, name string) error {
	r := n.lockRoom(name)
	defer n.unlockRoom(name, r)
	if _, in := m.rooms[name]; !in {
		return errNotInRoom
	}
	n.publish(event{Type: "here", Room: name, ID: m.id, User: m.name})
	return nil
}

func (n *node) say(m *member, name, text string) error {
	if _, in := m.rooms[name]; !in {
		return errNotInRoom
	}
	if count := utf8.RuneCountInString(text); count == 0 || count > maxTextRunes {
		return errText
	}
	n.publish(event{Type: "message", Room: name, ID: m.id, User: m.name, Text: text})
	return nil
}

func (n *node) publish(e event) {
	data, err := json.Marshal(e)
	if err != nil {
		n.log.Error("chat: encode event", "err", err)
		return
	}
	n.srv.Publish(roomTopic(e.Room), data)
}

func (n *node) sendError(s *live.Session, err error) {
	data, _ := json.Marshal(map[string]string{"message": err.Error()})
	_ = s.Send(live.Message{Topic: "error", Data: data})
}

// lockRoom returns the room, created if need be, with its mu held. Rooms are created and
// dropped under node.mu; refs keeps a room in the map while anyone holds or waits for it.
func (n *node) lockRoom(name string) *room {
	n.mu.Lock()
	r := n.rooms[name]
	if r == nil {
		r = &room{members: make(map[*live.Session]*member)}
		n.rooms[name] = r
	}
	r.refs++
	n.mu.Unlock()
	r.mu.Lock()
	return r
}

func (n *node) unlockRoom(name string, r *room) {
	r.mu.Unlock()
	n.mu.Lock()
	r.refs--
	// With no one holding or waiting for r.mu, its members can be read under node.mu:
	// whoever changed them last released r.mu and then took node.mu.
	if r.refs == 0 && len(r.members) == 0 {
		delete(n.rooms, name)
	}
	n.mu.Unlock()
}

// ttl is how long a page keeps a member it has heard nothing of: three rosters, so one
// lost roster does not drop anyone.
func (n *node) ttl() time.Duration { return 3 * n.refresh }

// refreshLoop publishes, every refresh interval, one roster per room that has members on
// this node. Rosters keep presence right where announcements were lost (a broker outage,
// a node that died without announcing its sessions' leaves): pages drop members that no
// roster mentions any more after ttl.
func (n *node) refreshLoop() {
	defer close(n.done)
	tick := time.NewTicker(n.refresh)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
			n.publishRosters()
		}
	}
}

func (n *node) publishRosters() {
	n.mu.Lock()
	names := make([]string, 0, len(n.rooms))
	for name := range n.rooms {
		names = append(names, name)
	}
	n.mu.Unlock()
	for _, name := range names {
		r := n.lockRoom(name)
		if len(r.members) > 0 {
			e := event{Type: "roster", Room: name, Members: make([]person, 0, len(r.members))}
			for _, m := range r.members {
				e.Members = append(e.Members, person{ID: m.id, User: m.name})
			}
			slices.SortFunc(e.Members, func(a, b person) int {
				return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.ID, b.ID))
			})
			n.publish(e)
		}
		n.unlockRoom(name, r)
	}
}

// shutdown stops the rosters, closes every session (their leaves reach the other nodes)
// and stops the live.Server, which closes the broker. Sessions still closing when ctx
// ends are closed at once.
func (n *node) shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() { close(n.stop) })
	<-n.done
	if err := n.srv.Shutdown(ctx); err != nil {
		return errors.Join(err, n.srv.Close())
	}
	return nil
}
