package dunningapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/natstest"
)

// Operators authenticate with their own tokens and act within their role;
// the audit trail records who they are, not who they say they are, and
// free text reaches it without control bytes (issue #15, point 3: one
// shared token, and the `operator` written into the audit trail was
// whatever the caller typed, escape bytes included).
func TestOperatorsHaveTheirOwnTokensAndRoles(t *testing.T) {
	sim, fsrv := ficsimtest.Start(t, ficsim.Config{Seed: 4, Companies: 1, Invoices: 60})
	cid := sim.CompanyIDs()[0]
	ns, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	_, smtpPort := startSMTP(t)
	_, now := businessMorning()
	shared := "shared-ops-token-0123456789"
	env := []string{"NATS_URL=" + ns.ClientURL(), "FIC_BASE_URL=" + fsrv.URL, "FIC_ACCESS_TOKEN=" + sim.Token(),
		"SMTP_HOST=127.0.0.1", fmt.Sprintf("SMTP_PORT=%d", smtpPort), "SMTP_TLS=none",
		"DUNNING_OPS_ADDR=127.0.0.1:0", "DUNNING_OPS_TOKEN=" + shared, "DUNNING_GROUP_DELAY=200ms"}
	m, _ := runService(t, now, env...)
	tokens := map[string]string{}
	for name, role := range map[string]string{"Vera": "viewer", "Otto": "operator", "Ada": "admin"} {
		var out bytes.Buffer
		if err := Command(ctx, []string{"operators", "add", "-name", name, "-role", role}, env, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		_, tok, ok := strings.Cut(out.String(), "DUNNING_OPS_TOKEN=")
		if !ok {
			t.Fatalf("no token printed:\n%s", out.String())
		}
		tokens[name] = strings.TrimSpace(tok)
	}
	p, src := ledgerPoller(t, js, fsrv.URL, sim.Token(), now)
	if _, err := p.Scan(ctx, src, cid, nil); err != nil {
		t.Fatal(err)
	}
	base := "http://" + m.OpsAddr
	call := func(tok, method, path string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	// A case in the approval queue (a catch-up reminder) and another case.
	var queued, other string
	deadline := time.Now().Add(20 * time.Second)
	for queued == "" && time.Now().Before(deadline) {
		_, out := call(tokens["Vera"], "GET", fmt.Sprintf("/v1/approvals?company=%d", cid), nil)
		if rows, _ := out["approvals"].([]any); len(rows) >= 2 {
			queued = num(rows[0].(map[string]any)["invoice_id"])
			other = num(rows[1].(map[string]any)["invoice_id"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	if queued == "" {
		t.Fatal("no approval queue")
	}
	c := fmt.Sprintf("/v1/cases/%d/", cid)
	for _, tc := range []struct {
		who, method, path string
		want              int
	}{
		{"Vera", "GET", fmt.Sprintf("/v1/cases?company=%d", cid), 200},
		{"Vera", "POST", c + other + "/pause", 403},
		{"Otto", "POST", c + other + "/writeoff", 403},
		{"Otto", "PUT", fmt.Sprintf("/v1/companies/%d/mode", cid), 403},
		{"Otto", "POST", c + queued + "/approve", 200},
	} {
		var body any = map[string]any{"until": now().AddDate(0, 0, 10).Format(time.DateOnly), "reason": "x"}
		switch {
		case tc.method == "GET":
			body = nil
		case tc.method == "PUT":
			body = map[string]any{"mode": "shadow"}
		case strings.HasSuffix(tc.path, "/approve"):
			body = map[string]any{"reason": "checked"}
		}
		if code, out := call(tokens[tc.who], tc.method, tc.path, body); code != tc.want {
			t.Errorf("%s %s %s: HTTP %d (%v), want %d", tc.who, tc.method, tc.path, code, out["error"], tc.want)
		}
	}
	// Otto says he is Ada and smuggles escape bytes: the audit says Otto,
	// and no escape byte is stored.
	if code, out := call(tokens["Otto"], "POST", c+other+"/pause", map[string]any{"operator": "Ada", "until": now().AddDate(0, 0, 10).Format(time.DateOnly),
		"reason": "client \x1b[31mon holiday\u202e\r\nforged line"}); code != 200 {
		t.Fatalf("pause: %d %v", code, out)
	}
	_, shown := call(tokens["Vera"], "GET", c+other, nil)
	tl, _ := json.Marshal(shown["timeline"])
	if !strings.Contains(string(tl), `"operator":"Otto"`) || strings.Contains(string(tl), `"operator":"Ada"`) || strings.Contains(string(tl), `\u001b`) ||
		strings.Contains(string(tl), `\u202e`) || strings.Contains(string(tl), `\r`) || !strings.Contains(string(tl), "client [31mon holiday forged line") {
		t.Fatalf("timeline: %s", tl)
	}
	// Ada writes off; the shared token is recorded as itself.
	if code, out := call(tokens["Ada"], "POST", c+other+"/writeoff", map[string]any{"reason": "bankrupt"}); code != 200 {
		t.Fatalf("admin write-off: %d %v", code, out)
	}
	if code, _ := call(shared, "GET", c+other, nil); code != 200 {
		t.Fatal("shared token refused")
	}
	// Revoked: the token stops working at once.
	if err := Command(ctx, []string{"operators", "revoke", "-name", "Otto"}, env, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(tokens["Otto"], "GET", c+other, nil); code != 403 {
		t.Fatalf("revoked token: HTTP %d", code)
	}
	if code, _ := call(tokens["Otto"]+"0", "GET", c+other, nil); code != 403 {
		t.Fatal("a forged token was accepted")
	}
}
