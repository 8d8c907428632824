package prometheus

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/livepoll/livepoll/live"
)

const namespace = "livepoll"

// metric is one exported metric family: its name after "livepoll_", its help text, and the
// Stats fields it reads (one series, or one per value of label).
type metric struct {
	name   string
	help   string
	kind   prometheus.ValueType
	label  string // the variable label's name, "" for a single series
	series []series
}

type series struct {
	labelValue string
	value      func(*live.Stats) float64
}

func one(f func(*live.Stats) float64) []series { return []series{{value: f}} }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// metrics is every metric the Collector exports, one entry per Stats field (TestEveryField
// fails when a field of live.Stats has no entry here). A new Stats field needs one entry.
var metrics = []metric{
	{"sessions", "Open sessions, including those finishing their closing handshake.",
		prometheus.GaugeValue, "", one(func(s *live.Stats) float64 { return float64(s.Sessions) })},
	{"topics", "Topics with at least one subscriber.",
		prometheus.GaugeValue, "", one(func(s *live.Stats) float64 { return float64(s.Topics) })},
	{"subscriptions", "Subscriptions, counted as (session, topic) pairs.",
		prometheus.GaugeValue, "", one(func(s *live.Stats) float64 { return float64(s.Subscriptions) })},

	{"messages_received_total", "Data messages received from clients.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.MessagesIn) })},
	{"messages_sent_total", "Messages handed to sessions to send; a Publish to n subscribers counts n.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.MessagesOut) })},
	{"read_bytes_total", "Bytes read from client sockets.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.BytesIn) })},
	{"written_bytes_total", "Bytes written to client sockets.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.BytesOut) })},

	{"messages_skipped_total", `Client messages that were not a {"topic","data"} envelope.`,
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Skipped) })},
	{"publish_dropped_total", "Publish and Send calls dropped because their data was not valid JSON.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.PublishDropped) })},
	{"upgrades_rejected_total", "WebSocket upgrades refused with 503 (MaxSessions reached, or shutting down).",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Rejected) })},
	{"accept_errors_total", "Accepts that failed for want of file descriptors or memory.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.AcceptErrors) })},
	{"tls_handshake_errors_total", "ServeTLS connections dropped before their TLS handshake finished (bad ClientHello, alert, timeout).",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.TLSHandshakeErrors) })},
	{"upgrades_throttled_total", "WebSocket upgrades refused with 503 by MaxUpgradeRate.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.UpgradesThrottled) })},
	{"rate_limited_total", "Times a client went over MessageRate or ByteRate (paused, or closed under RateLimitClose).",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.RateLimited) })},
	{"output_pauses_total", "Times a session stopped being read because its outgoing queue passed half its bounds.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.OutputPauses) })},

	{"sessions_closed_total", "Sessions closed, by the reason given to OnClose.",
		prometheus.CounterValue, "reason", []series{
			{"normal", func(s *live.Stats) float64 { return float64(s.Closed.Normal) }},
			{"eof", func(s *live.Stats) float64 { return float64(s.Closed.EOF) }},
			{"protocol", func(s *live.Stats) float64 { return float64(s.Closed.Protocol) }},
			{"invalid_utf8", func(s *live.Stats) float64 { return float64(s.Closed.InvalidUTF8) }},
			{"too_large", func(s *live.Stats) float64 { return float64(s.Closed.TooLarge) }},
			{"queue_full", func(s *live.Stats) float64 { return float64(s.Closed.QueueFull) }},
			{"timeout", func(s *live.Stats) float64 { return float64(s.Closed.Timeout) }},
			{"shutdown", func(s *live.Stats) float64 { return float64(s.Closed.Shutdown) }},
			{"rate_limited", func(s *live.Stats) float64 { return float64(s.Closed.RateLimited) }},
			{"panic", func(s *live.Stats) float64 { return float64(s.Closed.Panic) }},
			{"error", func(s *live.Stats) float64 { return float64(s.Closed.Error) }},
		}},

	{"broker_connected", "1 while the broker connection is up, else 0 (always 0 without a broker).",
		prometheus.GaugeValue, "", one(func(s *live.Stats) float64 { return boolValue(s.Broker.Connected) })},
	{"broker_disconnects_total", "Times the broker connection was lost.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Broker.Disconnects) })},
	{"broker_published_total", "Messages the broker accepted from Publish.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Broker.Published) })},
	{"broker_publish_errors_total", "Messages the broker refused at once (not sent to other nodes).",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Broker.PublishErrors) })},
	{"broker_received_total", "Messages from other nodes delivered here.",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Broker.Received) })},
	{"broker_interest_topics", "Topics this node asked the broker for, and it accepted.",
		prometheus.GaugeValue, "", one(func(s *live.Stats) float64 { return float64(s.Broker.Interest) })},
	{"broker_interest_errors_total", "Subscribe and Unsubscribe calls to the broker that failed (they are retried).",
		prometheus.CounterValue, "", one(func(s *live.Stats) float64 { return float64(s.Broker.InterestError) })},
}
