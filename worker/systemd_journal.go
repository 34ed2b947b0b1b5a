package worker

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"sync"
)

// OpenJournal reads a ship's output from the journal when its unit logs
// there (journald runs): the last tail lines (tail < 0: all of it), and
// with follow whatever comes after, until ctx ends or the reader is
// closed. ok is false when the ship's output is in LogPath instead.
func (d *Systemd) OpenJournal(ctx context.Context, id string, tail int, follow bool) (rc io.ReadCloser, ok bool, err error) {
	if !d.Journal() {
		return nil, false, nil
	}
	if !validUnitID(id) {
		return nil, true, fmt.Errorf("journal: bad ship id %q", id)
	}
	rc, err = openJournal(ctx, journalArgs(UnitName(id), tail, follow))
	return rc, true, err
}

// journalArgs is the journalctl command line for a unit's own output (its
// processes' lines, not systemd's lines about it), message text only.
func journalArgs(unit string, tail int, follow bool) []string {
	n := "all"
	if tail >= 0 {
		n = strconv.Itoa(tail)
	}
	args := []string{"journalctl", "--no-pager", "--output=cat", "--all", "--lines=" + n, "_SYSTEMD_UNIT=" + unit}
	if follow {
		args = append(args, "--follow")
	}
	return args
}

// journalReader is journalctl's output; Close ends journalctl.
type journalReader struct {
	io.Reader
	cmd    *exec.Cmd
	cancel context.CancelFunc
	once   sync.Once
}

func openJournal(ctx context.Context, args []string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &journalReader{Reader: out, cmd: cmd, cancel: cancel}, nil
}

func (j *journalReader) Close() error {
	j.once.Do(func() {
		j.cancel()
		_ = j.cmd.Wait()
	})
	return nil
}
