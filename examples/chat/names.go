package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

const (
	maxNameRunes = 32   // longest user name, after normalisation
	maxRoomLen   = 32   // longest room name
	maxTextRunes = 2000 // longest chat message
	maxRooms     = 16   // rooms one session may be in at once
)

var (
	errNameRequired = errors.New("a name is required")
	errNameInvalid  = errors.New("the name may not contain control or invisible characters")
	errNameTooLong  = fmt.Errorf("the name is longer than %d characters", maxNameRunes)
	errRoomInvalid  = fmt.Errorf("a room name is 1 to %d of a-z, 0-9, '-' and '_'", maxRoomLen)
)

// userName checks a requested user name and returns it as others will see it, and the
// key under which names that look alike are the same name. It uses the PRECIS Nickname
// profile (RFC 8266), which exists for names in chat rooms: it trims and collapses spaces,
// maps full-width and compatibility characters (NFKC), refuses control and invisible
// characters, and compares case-insensitively, so "Ann", "ANN", "ａｎｎ" and " ann " are
// one name.
func userName(raw string) (name, key string, err error) {
	switch {
	case strings.TrimSpace(raw) == "":
		return "", "", errNameRequired
	case len(raw) > 8*maxNameRunes: // far too long whatever normalisation makes of it
		return "", "", errNameTooLong
	case !utf8.ValidString(raw):
		return "", "", errNameInvalid
	}
	name, err = precis.Nickname.String(raw)
	if err != nil {
		return "", "", errNameInvalid
	}
	if utf8.RuneCountInString(name) > maxNameRunes {
		return "", "", errNameTooLong
	}
	key, err = precis.Nickname.CompareKey(name)
	if err != nil {
		return "", "", errNameInvalid
	}
	return name, key, nil
}

// roomName checks a room name. Rooms are plain ASCII so that a topic ("room:" + name)
// is a valid subject or channel name for every broker.
func roomName(raw string) (string, error) {
	if raw == "" || len(raw) > maxRoomLen {
		return "", errRoomInvalid
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return "", errRoomInvalid
		}
	}
	return raw, nil
}

// roomTopic is the live topic of a room: every event of the room goes there.
func roomTopic(room string) string { return "room:" + room }
