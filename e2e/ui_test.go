package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The web UI, driven in the Debian chromium (headless) against a real
// 3-node cluster: the cluster page, a blueprint and a fleet created in the
// UI whose ships turn ready without a reload, a field error of an invalid
// blueprint, a killed node turning dead with its ships moving. With
// ARMADA_SCREENSHOTS=dir the test saves screenshots of the main pages there
// (make screenshots writes docs/screenshots).

// browser starts headless chromium for t and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is required for the UI tests (make deps installs it: apt-get install -y chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Headless,
		chromedp.Flag("disable-background-networking", true), chromedp.NoFirstRun,
		chromedp.WindowSize(1440, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page is the browser with the test it serves.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p *page) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// js evaluates an expression and decodes its value into out.
func (p *page) js(expr string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// eval is an action that runs JavaScript for its effect.
func eval(expr string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[json.RawMessage](expr)(ctx, t)
		return chromedp.Void{}, err
	}
}

// colorScheme emulates the system's light or dark setting.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return chromedp.Void{}, err
	}
}

// until polls a JavaScript expression that returns "" once the page is as
// wanted, or what is still wrong.
func (p *page) until(timeout time.Duration, expr string) time.Duration {
	p.t.Helper()
	return waitFor(p.t, timeout, func() error {
		var msg string
		if err := p.js("(() => { try { return "+expr+"; } catch (e) { return 'error: ' + e; } })()", &msg); err != nil {
			return err
		}
		if msg != "" {
			return fmt.Errorf("%s", msg)
		}
		return nil
	})
}

// goTo moves the single-page app to a route without reloading it.
func (p *page) goTo(hash string) {
	p.t.Helper()
	var ok bool
	if err := p.js(fmt.Sprintf("(location.hash = %q, true)", hash), &ok); err != nil {
		p.t.Fatalf("go to %s: %v", hash, err)
	}
}

// setEditor replaces the text of the YAML editor under sel.
func (p *page) setEditor(sel, text string) {
	p.t.Helper()
	p.run("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel+" textarea")),
		chromedp.SetValue(chromedp.CSS(sel+" textarea"), text),
		eval(fmt.Sprintf("document.querySelector(%q).dispatchEvent(new Event('input'))", sel+" textarea")))
}

// screenshot saves the viewport as dir/name.png when ARMADA_SCREENSHOTS is
// set.
func (p *page) screenshot(name string) {
	p.t.Helper()
	dir := os.Getenv("ARMADA_SCREENSHOTS")
	if dir == "" {
		return
	}
	p.run("settle before the screenshot "+name, chromedp.Sleep(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func TestUI(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	c.Extra = []string{"--labels", "region=eu,tier=game"}
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	p := &page{t: t, ctx: browser(t)}

	// The cluster page lists the three nodes alive.
	p.run("open the UI", chromedp.Navigate(api.BaseURL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#nodes")))
	p.until(15*time.Second, `(() => { const n = document.querySelectorAll('#nodes tr[data-status="alive"]').length;
		return n === 3 ? "" : n + " alive nodes listed"; })()`)
	p.until(10*time.Second, `document.querySelector('#conn').classList.contains('live') ? "" : "event stream not live"`)
	var boot float64
	if err := p.js("window.armadaBoot", &boot); err != nil || boot == 0 {
		t.Fatalf("window.armadaBoot: %v %v", boot, err)
	}

	// An invalid blueprint: the API's error is shown at its field's line.
	p.goTo("#/blueprints/new")
	p.setEditor("#bp-editor", "name: broken\nunit: |\n  [Service]\n  ExecStart=/bin/sleep 1\nports:\n  - name: game\nhealth:\n  type: tcp\n  port: nope\n")
	p.run("save the invalid blueprint", chromedp.Click(chromedp.CSS("#bp-save")))
	p.until(10*time.Second, `(() => { const e = document.querySelector('#bp-editor .field-error');
		if (!e || !e.textContent) return "no error shown";
		if (e.dataset.field !== "health.port") return "error field " + e.dataset.field + ": " + e.textContent;
		if (e.dataset.line !== "9") return "error marked at line " + e.dataset.line + ": " + e.textContent;
		return document.querySelector('#bp-editor .gutter b')?.textContent === "9" ? "" : "line 9 not marked in the gutter"; })()`)
	p.screenshot("blueprint-error")

	// A blueprint and a fleet created in the UI: the ships appear and turn
	// ready without a reload.
	unit := "[Service]\nExecStart=/bin/sh -c 'echo arena ship $ARMADA_SHIP_ID on $ARMADA_NODE listening on $ARMADA_PORT_GAME; exec sleep 100000'\n"
	bp := fmt.Sprintf("name: arena\nunit: |\n  %s\nresources:\n  cpu_mhz: 250\n  memory_mb: 1024\nports:\n  - name: game\n    protocol: udp\nenv:\n  E2E_RUN: %q\n  MODE: ranked\nlabels:\n  game: arena\n",
		strings.ReplaceAll(strings.TrimSuffix(unit, "\n"), "\n", "\n  "), token)
	p.goTo("#/blueprints/new")
	p.setEditor("#bp-editor", bp)
	p.run("create the blueprint", chromedp.Click(chromedp.CSS("#bp-save")))
	p.until(10*time.Second, `location.hash === "#/blueprints/arena" ? "" : "still at " + location.hash + ": " + document.querySelector('.field-error')?.textContent`)

	p.goTo("#/fleets/new")
	p.setEditor("#fleet-editor", "name: arena-eu\nreplicas: 6\nversions:\n  - blueprint: arena\n    weight: 100\nplacement:\n  strategy: spread\n")
	p.run("create the fleet", chromedp.Click(chromedp.CSS("#fleet-save")))
	p.until(10*time.Second, `location.hash === "#/fleets/arena-eu" ? "" : "still at " + location.hash`)
	took := p.until(30*time.Second, `(() => { const rows = [...document.querySelectorAll('#fleet-ships tr[data-ship]')];
		const ready = rows.filter(r => r.dataset.state === "ready").length;
		return ready === 6 && document.querySelector('#fleet-ready').textContent === "6" ? "" : rows.length + " ships listed, " + ready + " ready"; })()`)
	t.Logf("the fleet's 6 ships showed ready on the page %s after it was created", took.Round(time.Millisecond))

	// Scale with the keyboard: type the number, press Enter.
	p.run("scale to 7", chromedp.SetValue(chromedp.CSS("#scale-n"), ""), chromedp.SendKeys(chromedp.CSS("#scale-n"), "7\r"))
	p.until(30*time.Second, `(() => { const ready = document.querySelectorAll('#fleet-ships tr[data-state="ready"]').length;
		return ready === 7 ? "" : ready + " ready after scaling to 7: " + document.querySelector('#scale-err').textContent; })()`)
	// A bad scale is the API's error, next to the control.
	p.run("scale to -1", chromedp.SetValue(chromedp.CSS("#scale-n"), ""), chromedp.SendKeys(chromedp.CSS("#scale-n"), "-1"),
		eval(`document.querySelector('#scale-n').removeAttribute('min')`), chromedp.Click(chromedp.CSS("#scale-btn")))
	p.until(10*time.Second, `document.querySelector('#scale-err').textContent.includes("replicas") ? "" : "scale error: " + document.querySelector('#scale-err').textContent`)
	// Allocating shows the API's answer where the button is: the ship it
	// got, which turns allocated live.
	p.run("allocate", chromedp.Click(chromedp.CSS("#alloc-btn")))
	p.until(10*time.Second, `(() => { const ok = document.querySelector('#alloc-ok').textContent, err = document.querySelector('#alloc-err').textContent;
		return ok.includes("arena-eu-") && !err ? "" : "allocate answered: " + ok + err; })()`)
	p.run("clear the errors", eval(`document.querySelector('#scale-err').textContent = document.querySelector('#alloc-err').textContent = ""`))
	p.screenshot("fleet")

	// A ship's page follows its logs.
	var shipID string
	if err := p.js(`document.querySelector('#fleet-ships tr[data-state="ready"]').dataset.ship`, &shipID); err != nil {
		t.Fatal(err)
	}
	p.goTo("#/ships/" + shipID)
	p.until(15*time.Second, fmt.Sprintf(`document.querySelector('#logs').textContent.includes("arena ship %s on") ? "" : "logs: " + document.querySelector('#logs').textContent + document.querySelector('#logs-err').textContent`, shipID))
	p.screenshot("ship")

	p.goTo("#/ships")
	p.until(5*time.Second, `document.querySelectorAll('#ships tr[data-ship]').length >= 7 ? "" : "ships page lists too few"`)
	p.screenshot("ships")

	// A second version, side by side with the first.
	p.goTo("#/blueprints/arena")
	p.until(10*time.Second, `document.querySelector('#bp-editor textarea').value.includes("MODE: ranked") ? "" : "editor not filled: " + document.querySelector('#bp-editor textarea').value`)
	var text string
	if err := p.js(`document.querySelector('#bp-editor textarea').value`, &text); err != nil {
		t.Fatal(err)
	}
	p.setEditor("#bp-editor", strings.Replace(strings.Replace(text, "MODE: ranked", "MODE: casual", 1), "memory_mb: 1024", "memory_mb: 2048", 1))
	p.run("save version 2", chromedp.Click(chromedp.CSS("#bp-save")))
	p.until(10*time.Second, `(() => { const d = document.querySelector('#diff'); return d.textContent.includes("v2") && d.querySelector('td.add') && d.querySelector('td.del') ? "" :
		"no diff of v1 and v2: " + document.querySelector('#bp-ok').textContent + document.querySelector('.field-error').textContent; })()`)
	p.screenshot("blueprint")

	// The fleet moves to version 2: its page shows the deployment live, and
	// its history once it succeeded. (The allocated ship of version 1 stays,
	// counted in the 7 replicas.)
	if r, err := writeAPI(byName(nodes, leader), http.MethodPut, "/v1/fleets/arena-eu",
		[]byte(`{"replicas": 7, "versions": [{"blueprint": "arena", "version": 2}], "placement": {"strategy": "spread"}, "update": {"max_parallel": 2}}`), 20*time.Second); err != nil {
		t.Fatalf("move the fleet to version 2: %v %v", r, err)
	}
	p.goTo("#/fleets/arena-eu")
	p.until(30*time.Second, `(() => { const r = document.querySelector('#deploy-history tbody tr'); return r && r.textContent.includes("succeeded") && r.textContent.includes("arena v1 → arena v2") && r.textContent.includes("6/6") ? "" : "deployments: " + document.querySelector('#deployments').textContent; })()`)
	p.screenshot("fleet-deployment")

	// The cluster page with its topology: 6 ready ships and the allocated
	// one as cells.
	p.goTo("#/")
	p.until(10*time.Second, `(() => { const n = document.querySelectorAll('#topo .cell[data-state="ready"]').length, a = document.querySelectorAll('#topo .cell[data-state="allocated"]').length;
		return n === 6 && a === 1 ? "" : n + " ready and " + a + " allocated cells"; })()`)
	p.screenshot("cluster")
	p.run("dark mode", colorScheme("dark"))
	p.screenshot("cluster-dark")
	p.run("light mode", colorScheme("light"))

	// Killing a node turns it dead on the page, and its ships move.
	victim := nonLeader(nodes, leader)
	var onVictim int
	if err := p.js(fmt.Sprintf(`document.querySelectorAll('#topo .node[data-node=%q] .cell:is([data-state="ready"], [data-state="allocated"])').length`, victim.Name), &onVictim); err != nil || onVictim == 0 {
		t.Fatalf("no ready ships shown on %s before the kill (%d, %v)", victim.Name, onVictim, err)
	}
	victim.Kill()
	p.until(20*time.Second, fmt.Sprintf(`(() => { const r = document.querySelector('#nodes tr[data-node=%q]'); return r.dataset.status === "dead" ? "" : "%s is " + r.dataset.status; })()`, victim.Name, victim.Name))
	moved := p.until(30*time.Second, fmt.Sprintf(`(() => {
		const ready = [...document.querySelectorAll('#topo .cell:is([data-state="ready"], [data-state="allocated"])')];
		const there = document.querySelectorAll('#topo .node[data-node=%q] .cell:is([data-state="ready"], [data-state="allocated"])').length;
		const lost = document.querySelectorAll('#topo .node[data-node=%q] .cell[data-state="lost"]').length;
		return ready.length === 7 && there === 0 && lost === %d ? "" : ready.length + " ready, " + there + " ready and " + lost + " lost on %s"; })()`,
		victim.Name, victim.Name, onVictim, victim.Name))
	t.Logf("%s dead on the page; its %d ships shown ready elsewhere %s after that", victim.Name, onVictim, moved.Round(time.Millisecond))
	p.screenshot("node-dead")

	// The node serving the page goes away: the page says so, and follows
	// the cluster again by itself once the node is back.
	victim.Restart()
	p.until(30*time.Second, fmt.Sprintf(`document.querySelector('#nodes tr[data-node=%q]').dataset.status === "alive" ? "" : "%s not alive again"`, victim.Name, victim.Name))
	api.Kill()
	p.until(10*time.Second, `document.querySelector('#conn').classList.contains('lost') ? "" : "connection loss not shown: " + document.querySelector('#conn').textContent`)
	api.Restart()
	back := p.until(30*time.Second, `(() => { const conn = document.querySelector('#conn'), alive = document.querySelectorAll('#nodes tr[data-status="alive"]').length;
		return conn.classList.contains('live') && alive === 3 ? "" : conn.textContent + ", " + alive + " nodes alive"; })()`)
	t.Logf("the page followed the cluster again %s after %s was restarted", back.Round(time.Millisecond), api.Name)

	var now float64
	if err := p.js("window.armadaBoot", &now); err != nil || now != boot {
		t.Fatalf("the page was reloaded (boot %v, now %v, %v)", boot, now, err)
	}
	// Nothing the page did went wrong in the console.
	var errs string
	_ = p.js(`JSON.stringify(window.armadaErrors || [])`, &errs)
	if errs != "" && errs != "[]" {
		var list []string
		_ = json.Unmarshal([]byte(errs), &list)
		t.Errorf("script errors on the page: %v", list)
	}
}
