package main

import (
	"fmt"
	"os"
	"strings"
)

// splice replaces, in the markdown doc, the text between the lines
// "<!-- tables.md:KEY -->" and "<!-- /tables.md:KEY -->" with the body of
// the table KEY, so docs/benchmarks.md quotes tables.md verbatim and its
// prose stays as written. It returns the keys of markers it found no table
// for (left as they were).
func splice(doc string, secs []section) (string, []string, error) {
	var stale []string
	for at := 0; ; {
		i := strings.Index(doc[at:], "<!-- tables.md:")
		if i < 0 {
			break
		}
		i += at
		j := strings.Index(doc[i:], " -->\n")
		if j < 0 {
			return "", nil, fmt.Errorf("unterminated marker at byte %d", i)
		}
		key := doc[i+len("<!-- tables.md:") : i+j]
		open := doc[i : i+j+len(" -->\n")]
		closing := "<!-- /tables.md:" + key + " -->"
		k := strings.Index(doc[i+len(open):], closing)
		if k < 0 {
			return "", nil, fmt.Errorf("no %q after %q", closing, strings.TrimSpace(open))
		}
		k += i + len(open)
		body, ok := "", false
		for _, s := range secs {
			if s.key == key {
				body, ok = s.body, true
			}
		}
		if !ok {
			stale = append(stale, key)
			at = k + len(closing)
			continue
		}
		doc = doc[:i+len(open)] + body + doc[k:]
		at = i + len(open) + len(body) + len(closing)
	}
	return doc, stale, nil
}

// spliceFile applies splice to the file at path.
func spliceFile(path string, secs []section) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	doc, stale, err := splice(string(b), secs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return stale, os.WriteFile(path, []byte(doc), 0o644)
}
