package sshcmd

import (
	"fmt"
	"strings"
)

// maxCommandBytes bounds a command line: no command here needs more, and a
// larger one is a mistake or an attack on the splitter.
const maxCommandBytes = 64 << 10

// Split splits a command line into words: runs of characters separated by
// spaces, tabs and newlines; single quotes keep everything up to the next
// single quote as it is; double quotes keep everything up to the next
// unescaped double quote, where \" and \\ stand for " and \; outside quotes a
// backslash keeps the next character as it is.
//
// Security: that is all. Nothing is expanded ($VAR, ~, globs, $(...),
// backquotes) and nothing is special (; | & < >): each is an ordinary
// character of a word. The words go to a Go switch, never to a shell.
func Split(line string) ([]string, error) {
	if len(line) > maxCommandBytes {
		return nil, fmt.Errorf("%w: the command is longer than %d bytes", ErrUsage, maxCommandBytes)
	}
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%w: %w: a ' is never closed", ErrUsage, ErrUnterminatedQuote)
			}
			w.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			closed := false
			for i++; i < len(line); i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				} else if line[i] == '"' {
					closed = true
					break
				}
				w.WriteByte(line[i])
			}
			if !closed {
				return nil, fmt.Errorf("%w: %w: a \" is never closed", ErrUsage, ErrUnterminatedQuote)
			}
			inWord = true
		case c == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
			inWord = true
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// Quote returns word as Split reads it back: as it is when it needs no
// quotes, else in single quotes.
func Quote(word string) string {
	if word != "" && strings.Trim(word, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/=@+%") == "" {
		return word
	}
	return "'" + strings.ReplaceAll(word, "'", `'\''`) + "'"
}

// Join quotes words and joins them into one command line.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}
