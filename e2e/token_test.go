package e2e

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestTokenCluster runs three real nodes with --token. The API refuses a
// call without it; the CLI with ARMADA_TOKEN writes through a follower (the
// follower forwards to the leader with the token) and reads it back; the
// web UI with the token saved in the browser lists the nodes live.
func TestTokenCluster(t *testing.T) {
	const secret = "e2e-token"
	c := NewCluster(t)
	c.Token = secret
	nodes, leader := formCluster(t, c, 3)
	var follower *Node
	for _, n := range nodes {
		if n.Name != leader {
			follower = n
		}
	}
	res := runCLI(t, nil, "--addr", follower.BaseURL(), "status")
	if res.Code == 0 || !strings.Contains(res.Stderr, "token") {
		t.Fatalf("status without the token was not refused clearly\n%s", res)
	}
	env := []string{"ARMADA_TOKEN=" + secret}
	mustCLI(t, env, "--addr", follower.BaseURL(), "kv", "put", "e2e/token", "forwarded")
	if got := mustCLI(t, env, "--addr", byName(nodes, leader).BaseURL(), "kv", "get", "e2e/token"); !strings.Contains(got.Stdout, "forwarded") {
		t.Fatalf("kv get on the leader\n%s", got)
	}

	// The UI asks for the token once (a prompt, answered here), keeps it,
	// and sends it on every call and on the event stream.
	p := &page{t: t, ctx: browser(t)}
	var prompts atomic.Int32
	dialogs := chromedp.Events(p.ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			prompts.Add(1)
			answer := cdppage.HandleJavaScriptDialogParams{Accept: ev.Type == cdppage.DialogTypePrompt, PromptText: secret}
			if _, err := chromedp.Call(p.ctx, cdppage.HandleJavaScriptDialog, answer); err != nil {
				return
			}
		}
	}()
	p.run("open the UI", chromedp.Navigate(follower.BaseURL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#nodes")))
	p.until(20*time.Second, `(() => { const n = document.querySelectorAll('#nodes tr[data-status="alive"]').length;
		return n === 3 ? "" : n + " alive nodes listed"; })()`)
	p.until(10*time.Second, `document.querySelector('#conn').classList.contains('live') ? "" : "event stream not live"`)
	p.until(5*time.Second, `localStorage.getItem("armada-token") === "`+secret+`" ? "" : "token not kept"`)
	if n := prompts.Load(); n != 1 {
		t.Fatalf("the UI asked for the token %d times, want once", n)
	}
}
