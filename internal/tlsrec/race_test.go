//go:build race

package tlsrec

const raceEnabled = true
