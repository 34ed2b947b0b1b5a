package worker

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseUnit(t *testing.T) {
	defaults := func(f func(u *Unit)) *Unit {
		u := &Unit{
			ExecStart:          "/bin/true",
			Environment:        map[string]string{},
			Restart:            RestartNo,
			RestartDelay:       100 * time.Millisecond,
			TimeoutStop:        10 * time.Second,
			StartLimitBurst:    5,
			StartLimitInterval: 10 * time.Second,
		}
		if f != nil {
			f(u)
		}
		return u
	}
	tests := []struct {
		name string
		text string
		want *Unit
		err  string
	}{
		{name: "defaults", text: "[Service]\nExecStart=/bin/true\n", want: defaults(nil)},
		{
			name: "everything",
			text: `# a comment
; another comment
[Unit]
Description=demo
StartLimitIntervalSec=1min 30s

[Service]
Type=simple
ExecStart=/bin/false
ExecStart=/usr/bin/env A=1 \
    sh -c 'echo hi'
Environment=A=1 B=2
Environment="C=x y" 'D=z'
Environment=A=3
WorkingDirectory=/tmp
Restart=on-failure
RestartSec=500ms
TimeoutStopSec=5
StartLimitBurst=3
`,
			want: defaults(func(u *Unit) {
				u.ExecStart = "/usr/bin/env A=1  sh -c 'echo hi'"
				u.Environment = map[string]string{"A": "3", "B": "2", "C": "x y", "D": "z"}
				u.WorkingDirectory = "/tmp"
				u.Restart = RestartOnFailure
				u.RestartDelay = 500 * time.Millisecond
				u.TimeoutStop = 5 * time.Second
				u.StartLimitBurst = 3
				u.StartLimitInterval = 90 * time.Second
			}),
		},
		{
			name: "last non-empty ExecStart wins",
			text: "[Service]\nExecStart=/bin/a\nExecStart=/bin/b\nExecStart=\n",
			want: defaults(func(u *Unit) { u.ExecStart = "/bin/b" }),
		},
		{
			name: "dash prefix",
			text: "[Service]\nExecStart=-/bin/false x\n",
			want: defaults(func(u *Unit) { u.ExecStart, u.IgnoreFailure = "/bin/false x", true }),
		},
		{
			name: "stacked prefixes",
			text: "[Service]\nExecStart=+!:-@/bin/sh sh -c true\n",
			want: defaults(func(u *Unit) {
				u.ExecStart, u.IgnoreFailure, u.SetArgv0 = "/bin/sh sh -c true", true, true
			}),
		},
		{
			name: "empty Environment resets",
			text: "[Service]\nExecStart=/bin/true\nEnvironment=A=1\nEnvironment=\nEnvironment=B=2\n",
			want: defaults(func(u *Unit) { u.Environment = map[string]string{"B": "2"} }),
		},
		{
			name: "optional working directory, infinity, service start limit",
			text: "[Service]\nExecStart=/bin/true\nWorkingDirectory=-/nope\nTimeoutStopSec=infinity\n" +
				"StartLimitIntervalSec=0\nStartLimitBurst=0\nRestart=always\n",
			want: defaults(func(u *Unit) {
				u.WorkingDirectory, u.WorkingDirectoryOptional = "/nope", true
				u.TimeoutStop = 0
				u.StartLimitInterval, u.StartLimitBurst = 0, 0
				u.Restart = RestartAlways
			}),
		},
		{
			name: "other sections ignored",
			text: "[Install]\nExecStart=/bin/no\n[Service]\nExecStart=/bin/true\n[X-Armada]\nRestart=bogus\n",
			want: defaults(nil),
		},
		{name: "missing ExecStart", text: "[Service]\nRestart=always\n", err: "parse unit: [Service] ExecStart= is required"},
		{name: "ExecStart outside Service", text: "[Unit]\nExecStart=/bin/true\n", err: "ExecStart= is required"},
		{name: "only prefixes", text: "[Service]\nExecStart=-@\n", err: "has no command"},
		{name: "bad restart", text: "[Service]\nExecStart=/bin/true\nRestart=sometimes\n", err: `parse unit: Restart=: unknown policy "sometimes"`},
		{name: "bad span", text: "[Service]\nExecStart=/bin/true\nRestartSec=5 parsecs\n", err: "RestartSec=: bad time span"},
		{name: "infinity restart", text: "[Service]\nExecStart=/bin/true\nRestartSec=infinity\n", err: "RestartSec=: infinity"},
		{name: "bad burst", text: "[Service]\nExecStart=/bin/true\nStartLimitBurst=-1\n", err: "StartLimitBurst=: not a count"},
		{name: "bad env", text: "[Service]\nExecStart=/bin/true\nEnvironment=1A=x\n", err: "Environment=: not a NAME=value"},
		{name: "bad quote", text: "[Service]\nExecStart=/bin/true\nEnvironment=\"A=x\n", err: "unterminated"},
		{name: "garbage", text: "[Service\nExecStart=/bin/true\n", err: "parse unit: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseUnit(tt.text)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "parse unit: ") {
					t.Errorf("err = %q, want it to start with \"parse unit: \"", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(u, tt.want) {
				t.Errorf("got  %+v\nwant %+v", u, tt.want)
			}
		})
	}
}

func TestParseTimespan(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		inf  bool
		bad  bool
	}{
		{in: "5", want: 5 * time.Second},
		{in: "5s", want: 5 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1min 30s", want: 90 * time.Second},
		{in: "1min30s", want: 90 * time.Second},
		{in: "2 h", want: 2 * time.Hour},
		{in: "1.5s", want: 1500 * time.Millisecond},
		{in: "1d 2h 3m 4s 5ms 6us", want: 26*time.Hour + 3*time.Minute + 4*time.Second + 5*time.Millisecond + 6*time.Microsecond},
		{in: "0", want: 0},
		{in: "infinity", inf: true},
		{in: "", bad: true},
		{in: "s", bad: true},
		{in: "5 lightyears", bad: true},
		{in: "-5s", bad: true},
		{in: "1..2s", bad: true},
		{in: "999999999y", bad: true},
	}
	for _, tt := range tests {
		d, inf, err := ParseTimespan(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseTimespan(%q) = %v, want an error", tt.in, d)
			}
			continue
		}
		if err != nil || d != tt.want || inf != tt.inf {
			t.Errorf("ParseTimespan(%q) = %v, %v, %v; want %v, %v", tt.in, d, inf, err, tt.want, tt.inf)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	env := map[string]string{"NAME": "world", "ARGS": "  -a  -b ", "EMPTY": "", "SP": "x y"}
	tests := []struct {
		line string
		want []string
		err  string
	}{
		{line: "/bin/echo hello world", want: []string{"/bin/echo", "hello", "world"}},
		{line: "  /bin/echo \t spaced  ", want: []string{"/bin/echo", "spaced"}},
		{line: `/bin/sh -c "echo 'hi there'"`, want: []string{"/bin/sh", "-c", "echo 'hi there'"}},
		{line: `/bin/sh -c 'echo "hi there"'`, want: []string{"/bin/sh", "-c", `echo "hi there"`}},
		{line: `a "" ''`, want: []string{"a", "", ""}},
		{line: `a"b c"d`, want: []string{"ab cd"}},
		{line: `a\ b c\\d \"e\" \x41\101 "\t" \n`, want: []string{"a b", `c\d`, `"e"`, "AA", "\t", "\n"}},
		{line: `echo ${NAME}`, want: []string{"echo", "world"}},
		{line: `echo hello-${NAME}-!`, want: []string{"echo", "hello-world-!"}},
		{line: `echo "${SP}"`, want: []string{"echo", "x y"}},
		{line: `echo $ARGS end`, want: []string{"echo", "-a", "-b", "end"}},
		{line: `echo $SP`, want: []string{"echo", "x", "y"}},
		{line: `echo $NAME/x pre$NAME`, want: []string{"echo", "$NAME/x", "pre$NAME"}},
		{line: `echo $UNKNOWN ${UNKNOWN} x${UNKNOWN}y $EMPTY`, want: []string{"echo", "", "xy"}},
		{line: `echo $$NAME cost$$ $ ${bad-name}`, want: []string{"echo", "$NAME", "cost$", "$", "${bad-name}"}},
		{line: `echo 'unterminated`, err: "unterminated ' quote"},
		{line: `echo "unterminated`, err: `unterminated " quote`},
		{line: `echo trailing\`, err: "trailing backslash"},
		{line: `echo \x4`, err: `\x`},
		{line: `echo \x00`, err: `\x`},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.line, env)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "parse unit: ") {
				t.Errorf("SplitCommand(%q) = %q, %v; want error %q", tt.line, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", tt.line, got, err, tt.want)
		}
	}
}
