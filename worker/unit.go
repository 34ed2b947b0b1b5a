package worker

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

// Restart= policies, as in systemd.service(5).
const (
	RestartNo         = "no"
	RestartOnSuccess  = "on-success"
	RestartOnFailure  = "on-failure"
	RestartOnAbnormal = "on-abnormal"
	RestartOnAbort    = "on-abort"
	RestartOnWatchdog = "on-watchdog"
	RestartAlways     = "always"
)

// Unit defaults, as in systemd.
const (
	DefaultRestartDelay       = 100 * time.Millisecond
	DefaultTimeoutStop        = 10 * time.Second
	DefaultStartLimitBurst    = 5
	DefaultStartLimitInterval = 10 * time.Second
)

// Unit is what the exec driver takes from a systemd unit.
type Unit struct {
	// ExecStart is the command line of the last non-empty ExecStart=, its
	// prefixes stripped; split it with SplitCommand.
	ExecStart string
	// IgnoreFailure is the "-" prefix: a non-zero exit status or a death
	// by signal counts as success.
	IgnoreFailure bool
	// SetArgv0 is the "@" prefix: the command's second word is passed as
	// argv[0] of the first.
	SetArgv0 bool
	// Environment holds the Environment= assignments; later ones win.
	Environment map[string]string
	// WorkingDirectory is empty for the driver's default; a "-" prefix
	// (ignore a missing directory) is stripped into WorkingDirectoryOptional.
	WorkingDirectory         string
	WorkingDirectoryOptional bool
	// Restart is one of the Restart* constants; RestartDelay is RestartSec=.
	Restart      string
	RestartDelay time.Duration
	// TimeoutStop (TimeoutStopSec=, or TimeoutSec=) is how long a stop
	// waits after SIGTERM before SIGKILL; 0 means forever ("infinity" or
	// "0").
	TimeoutStop time.Duration
	// More than StartLimitBurst starts within StartLimitInterval
	// (StartLimitIntervalSec=, in [Unit] or [Service]) make the driver give
	// up; either being 0 disables the limit.
	StartLimitBurst    int
	StartLimitInterval time.Duration
}

// ParseUnit parses systemd unit text and returns what the exec driver needs
// from its [Service] (and [Unit]) sections. Unknown keys are ignored; an
// empty assignment resets a key to its default, as in systemd.
func ParseUnit(text string) (*Unit, error) {
	u, err := parseUnit(text)
	if err != nil {
		return nil, fmt.Errorf("parse unit: %w", err)
	}
	return u, nil
}

func parseUnit(text string) (*Unit, error) {
	opts, err := unit.DeserializeOptions(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	u := &Unit{
		Environment:        map[string]string{},
		Restart:            RestartNo,
		RestartDelay:       DefaultRestartDelay,
		TimeoutStop:        DefaultTimeoutStop,
		StartLimitBurst:    DefaultStartLimitBurst,
		StartLimitInterval: DefaultStartLimitInterval,
	}
	execStart := ""
	for _, o := range opts {
		if o.Section != "Service" && o.Section != "Unit" {
			continue
		}
		if err := u.set(o.Section, o.Name, joinContinuations(o.Value), &execStart); err != nil {
			return nil, fmt.Errorf("%s=: %w", o.Name, err)
		}
	}
	if execStart == "" {
		return nil, errors.New("[Service] ExecStart= is required")
	}
	// Prefixes: "-" ignore failure, "@" set argv[0], "+", "!", "!!", ":"
	// and "|" change privileges or expansion, which this driver ignores.
	i := 0
	for ; i < len(execStart) && strings.IndexByte("-@+!:|", execStart[i]) >= 0; i++ {
		switch execStart[i] {
		case '-':
			u.IgnoreFailure = true
		case '@':
			u.SetArgv0 = true
		}
	}
	u.ExecStart = strings.TrimSpace(execStart[i:])
	if u.ExecStart == "" {
		return nil, errors.New("[Service] ExecStart= has no command")
	}
	return u, nil
}

// set applies one assignment of section [Unit] or [Service].
func (u *Unit) set(section, name, v string, execStart *string) error {
	var err error
	switch name {
	case "StartLimitIntervalSec", "StartLimitInterval":
		u.StartLimitInterval, err = spanOr(v, DefaultStartLimitInterval, false)
		return err
	case "StartLimitBurst":
		u.StartLimitBurst, err = burst(v)
		return err
	}
	if section != "Service" {
		return nil
	}
	switch name {
	case "ExecStart":
		if v != "" {
			*execStart = v
		}
	case "Environment":
		if v == "" {
			clear(u.Environment)
			return nil
		}
		words, err := splitWords(v)
		if err != nil {
			return err
		}
		for _, w := range words {
			k, val, ok := strings.Cut(w, "=")
			if !ok || !validEnvName(k) {
				return fmt.Errorf("not a NAME=value assignment: %q", w)
			}
			u.Environment[k] = val
		}
	case "WorkingDirectory":
		u.WorkingDirectory, u.WorkingDirectoryOptional = v, false
		if rest, ok := strings.CutPrefix(v, "-"); ok {
			u.WorkingDirectory, u.WorkingDirectoryOptional = rest, true
		}
	case "Restart":
		switch v {
		case "":
			u.Restart = RestartNo
		case RestartNo, RestartOnSuccess, RestartOnFailure, RestartOnAbnormal,
			RestartOnAbort, RestartOnWatchdog, RestartAlways:
			u.Restart = v
		default:
			return fmt.Errorf("unknown policy %q", v)
		}
	case "RestartSec":
		u.RestartDelay, err = spanOr(v, DefaultRestartDelay, false)
	case "TimeoutStopSec", "TimeoutSec":
		u.TimeoutStop, err = spanOr(v, DefaultTimeoutStop, true)
	}
	return err
}

// joinContinuations turns the go-systemd form of a continued value
// ("a \\\n  b") into systemd's: the backslash becomes a space and the next
// line's leading whitespace goes.
func joinContinuations(v string) string {
	if !strings.Contains(v, "\n") && !strings.HasSuffix(v, "\\") {
		return strings.TrimSpace(v)
	}
	lines := strings.Split(v, "\n")
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			l = strings.TrimLeft(l, " \t")
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			l = s + " "
		}
		b.WriteString(l)
	}
	return strings.TrimSpace(b.String())
}

func spanOr(v string, def time.Duration, infinity bool) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, inf, err := ParseTimespan(v)
	if err != nil {
		return 0, err
	}
	if inf {
		if !infinity {
			return 0, errors.New("infinity is not allowed here")
		}
		return 0, nil
	}
	return d, nil
}

func burst(v string) (int, error) {
	if v == "" {
		return DefaultStartLimitBurst, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a count: %q", v)
	}
	return n, nil
}

// timeUnit returns the length of a systemd time span unit (systemd.time(7)).
func timeUnit(u string) (time.Duration, bool) {
	const day = 24 * time.Hour
	switch u {
	case "ns", "nsec":
		return time.Nanosecond, true
	case "us", "usec", "µs", "μs":
		return time.Microsecond, true
	case "ms", "msec":
		return time.Millisecond, true
	case "s", "sec", "second", "seconds":
		return time.Second, true
	case "m", "min", "minute", "minutes":
		return time.Minute, true
	case "h", "hr", "hour", "hours":
		return time.Hour, true
	case "d", "day", "days":
		return day, true
	case "w", "week", "weeks":
		return 7 * day, true
	case "M", "month", "months":
		return 2629800 * time.Second, true
	case "y", "year", "years":
		return 31557600 * time.Second, true
	}
	return 0, false
}

// ParseTimespan parses a systemd time span such as "5", "5s", "500ms",
// "1min 30s" or "1.5h"; a bare number is seconds. "infinity" reports inf.
func ParseTimespan(s string) (d time.Duration, inf bool, err error) {
	s = strings.TrimSpace(s)
	if s == "infinity" {
		return 0, true, nil
	}
	if s == "" {
		return 0, false, errors.New("empty time span")
	}
	bad := fmt.Errorf("bad time span %q", s)
	var total float64
	for rest := s; rest != ""; rest = strings.TrimLeft(rest, " \t") {
		n := 0
		for n < len(rest) && (rest[n] >= '0' && rest[n] <= '9' || rest[n] == '.') {
			n++
		}
		num, err := strconv.ParseFloat(rest[:n], 64)
		if n == 0 || err != nil {
			return 0, false, bad
		}
		rest = strings.TrimLeft(rest[n:], " \t")
		n = 0
		for n < len(rest) && !(rest[n] >= '0' && rest[n] <= '9' || rest[n] == '.' || rest[n] == ' ' || rest[n] == '\t') {
			n++
		}
		unitLen := time.Second
		if n > 0 {
			var ok bool
			if unitLen, ok = timeUnit(rest[:n]); !ok {
				return 0, false, bad
			}
		}
		rest = rest[n:]
		total += num * float64(unitLen)
		if total >= math.MaxInt64 {
			return 0, false, bad
		}
	}
	return time.Duration(total), false, nil
}

// SplitCommand splits an ExecStart= command line into words as systemd
// does: words are separated by whitespace; double and single quotes group
// (and may appear inside a word); C-style backslash escapes (\n, \t, \\,
// \", \', \xHH, \NNN octal, "\ ") are decoded in and out of quotes. Then
// each word is expanded with env: "${NAME}" is replaced inside a word, a
// word that is exactly "$NAME" becomes the value split at whitespace (zero
// or more words), and "$$" is a literal "$". Unknown variables expand to
// nothing.
func SplitCommand(line string, env map[string]string) ([]string, error) {
	words, err := splitWords(line)
	if err != nil {
		return nil, fmt.Errorf("parse unit: ExecStart=: %w", err)
	}
	var out []string
	for _, w := range words {
		if name, ok := strings.CutPrefix(w, "$"); ok && validEnvName(name) {
			out = append(out, strings.Fields(env[name])...)
			continue
		}
		out = append(out, expandBraces(w, env))
	}
	return out, nil
}

// expandBraces replaces ${NAME} with env[NAME] and $$ with $.
func expandBraces(w string, env map[string]string) string {
	if !strings.Contains(w, "$") {
		return w
	}
	var b strings.Builder
	for i := 0; i < len(w); i++ {
		if w[i] != '$' || i+1 >= len(w) {
			b.WriteByte(w[i])
			continue
		}
		switch w[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
			if end := strings.IndexByte(w[i+2:], '}'); end >= 0 && validEnvName(w[i+2:i+2+end]) {
				b.WriteString(env[w[i+2:i+2+end]])
				i += 2 + end
				continue
			}
		}
		b.WriteByte('$')
	}
	return b.String()
}

// splitWords splits s at unquoted whitespace, removing quotes and decoding
// backslash escapes.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inW   bool // a word has started (it may still be empty: "")
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			n, err := unescape(s[i+1:], &cur)
			if err != nil {
				return nil, err
			}
			i += n
			inW = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inW = c, true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inW {
				words = append(words, cur.String())
				cur.Reset()
				inW = false
			}
		default:
			cur.WriteByte(c)
			inW = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inW {
		words = append(words, cur.String())
	}
	return words, nil
}

// unescape decodes the escape whose text (after the backslash) starts s,
// writes it to b and returns how many bytes of s it used. An unknown escape
// stands for the character itself.
func unescape(s string, b *strings.Builder) (int, error) {
	c := s[0]
	if r := strings.IndexByte("abfnrtvs", c); r >= 0 {
		b.WriteByte("\a\b\f\n\r\t\v "[r])
		return 1, nil
	}
	switch {
	case c == 'x':
		if len(s) < 3 {
			return 0, errors.New(`short \x escape`)
		}
		v, err := strconv.ParseUint(s[1:3], 16, 8)
		if err != nil || v == 0 {
			return 0, fmt.Errorf(`bad \x escape %q`, s[:3])
		}
		b.WriteByte(byte(v))
		return 3, nil
	case c >= '0' && c <= '7':
		if len(s) < 3 {
			return 0, errors.New("short octal escape")
		}
		v, err := strconv.ParseUint(s[:3], 8, 8)
		if err != nil || v == 0 {
			return 0, fmt.Errorf(`bad octal escape \%s`, s[:3])
		}
		b.WriteByte(byte(v))
		return 3, nil
	case c == '\n':
		return 1, nil // a continuation that survived: nothing
	}
	b.WriteByte(c)
	return 1, nil
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}
