package pubsub

import "encoding/json"

// envelope is the live envelope, encoded like mizu's (no omitempty here).
// The bodies of subscribe, unsubscribe and publish have the same shape.
type envelope struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// Envelope encodes {"topic":topic,"data":data} with json.Marshal, as mizu's
// live does: data is compacted and HTML-escaped, nil data is null.
func Envelope(topic string, data json.RawMessage) ([]byte, error) {
	return json.Marshal(envelope{Topic: topic, Data: data})
}

// Op is what a client message asks for.
type Op int

const (
	OpNone        Op = iota // an envelope the app has no use for
	OpSubscribe             // subscribe {"topic":T}
	OpUnsubscribe           // unsubscribe {"topic":T}
	OpPublish               // publish {"topic":T,"data":D}
	OpEcho                  // echo D: D comes back in an "echo" envelope
)

// Command is a decoded client message.
type Command struct {
	Op    Op
	Topic string          // OpSubscribe, OpUnsubscribe, OpPublish: T, never empty
	Data  json.RawMessage // OpPublish: the data to publish; OpEcho: the data to echo
}

// Parse decodes a client message, an envelope {"topic":…,"data":…}. ok is
// false if msg is not an envelope: the apps skip such a message, as mizu's
// live does, and do not count the session for it. An envelope with another
// topic, or a subscribe, unsubscribe or publish whose data is not an object
// with a non-empty topic, is OpNone.
//
// json.Unmarshal copies into strings and json.RawMessage, so nothing in cmd
// refers to msg: a library may reuse msg's buffer once Parse returns.
func Parse(msg []byte) (cmd Command, ok bool) {
	var env envelope
	if json.Unmarshal(msg, &env) != nil {
		return Command{}, false
	}
	switch env.Topic {
	case "subscribe", "unsubscribe", "publish":
		var body envelope
		if json.Unmarshal(env.Data, &body) != nil || body.Topic == "" {
			return Command{}, true
		}
		switch env.Topic {
		case "subscribe":
			return Command{Op: OpSubscribe, Topic: body.Topic}, true
		case "unsubscribe":
			return Command{Op: OpUnsubscribe, Topic: body.Topic}, true
		default:
			return Command{Op: OpPublish, Topic: body.Topic, Data: body.Data}, true
		}
	case "echo":
		return Command{Op: OpEcho, Data: env.Data}, true
	}
	return Command{}, true
}

// Sender sends the app's messages, in its library's terms.
type Sender[C any] interface {
	// Publish sends {"topic":topic,"data":data} to topic's subscribers.
	Publish(topic string, data []byte)
	// Echo sends {"topic":"echo","data":data} back to c.
	Echo(c C, data []byte)
}
