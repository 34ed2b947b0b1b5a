package main

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestJoinFlagsCheck refuses bad join flags with an error naming the
// flag, and takes the defaults.
func TestJoinFlagsCheck(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" when the flags are good
	}{
		{nil, ""},
		{[]string{"--voters", "1"}, ""},
		{[]string{"--voters", "0"}, "--voters: must be at least 1"},
		{[]string{"--voters", "-2"}, "--voters: must be at least 1"},
		{[]string{"--driver", "docker"}, "--driver:"},
		{[]string{"--ports-range", "9-1"}, "ports-range"},
		{[]string{"--lost-grace", "0s"}, "--lost-grace:"},
		{[]string{"--sdk-addr", "10.0.0.1:7071"}, "--sdk-addr: must be a loopback address"},
	} {
		f := &joinFlags{}
		fl := pflag.NewFlagSet("join", pflag.ContinueOnError)
		f.register(fl)
		if err := fl.Parse(c.args); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		err := f.check()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}
