package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

type clientFlags struct {
	addr, token, output string
}

// client talks to one node's HTTP API.
type client struct {
	base, token string
	http        *http.Client
}

func (f *clientFlags) client() *client {
	base := strings.TrimRight(f.addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &client{base: base, token: f.token, http: &http.Client{Timeout: 60 * time.Second}}
}

// apiError mirrors the API's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// do sends a request; a non-2xx answer becomes an error carrying the API's
// field and message. out, if non-nil, receives the JSON body.
func (c *client) do(ctx context.Context, method, path string, body []byte, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var ae apiError
		if json.Unmarshal(data, &ae) == nil && ae.Error.Message != "" {
			if ae.Error.Field != "" {
				return fmt.Errorf("%s: %s (%s, HTTP %d)", ae.Error.Field, ae.Error.Message, ae.Error.Code, resp.StatusCode)
			}
			return fmt.Errorf("%s (%s, HTTP %d)", ae.Error.Message, ae.Error.Code, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

func (c *client) get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", out)
}

// printJSON writes v indented.
func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns.
func table(header []string, rows [][]string) {
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	w.Flush()
}

// render prints raw JSON for -o json, or calls tableFn.
func (f *clientFlags) render(raw json.RawMessage, tableFn func() error) error {
	switch f.output {
	case "json":
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return printJSON(v)
	case "table", "":
		return tableFn()
	}
	return fmt.Errorf("--output: must be table or json, not %q", f.output)
}

// result prints what a command did: v as JSON for -o json, else the text.
func (f *clientFlags) result(v any, format string, args ...any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return f.render(raw, func() error {
		fmt.Printf(format, args...)
		return nil
	})
}

func labelsString(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	sortStrings(parts)
	return strings.Join(parts, ",")
}

func ago(ms int64) string {
	if ms == 0 {
		return "-"
	}
	d := time.Since(time.UnixMilli(ms)).Round(time.Second)
	return d.String() + " ago"
}
