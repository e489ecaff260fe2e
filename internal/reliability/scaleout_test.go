package reliability

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
)

// syncBuf is a replica's log.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(s.b.String(), "\n")
}

type pollerReplica struct {
	name, addr string
	cmd        *exec.Cmd
	done       chan struct{}
	log        *syncBuf
}

func (r *pollerReplica) owned() int {
	resp, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "incasso_companies_owned "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return -1
}

// scan is one complete scan of a company by a replica, as its log says.
type scan struct {
	replica    string
	company    int64
	start, end time.Time
}

func (r *pollerReplica) scans() []scan {
	var out []scan
	for _, l := range r.log.lines() {
		if !strings.Contains(l, `"scan complete"`) {
			continue
		}
		var v struct {
			Time     time.Time `json:"time"`
			Company  int64     `json:"company_id"`
			Duration int64     `json:"duration_ms"`
		}
		if json.Unmarshal([]byte(l), &v) != nil {
			continue
		}
		// The log line is written after the scan: it started duration_ms
		// (rounded down) before, so widen by a millisecond.
		out = append(out, scan{r.name, v.Company, v.Time.Add(-time.Duration(v.Duration+1) * time.Millisecond), v.Time})
	}
	return out
}

// Three poller binaries on a three-node JetStream cluster share 30
// companies evenly; a fourth joins and takes its share, then leaves; one is
// SIGKILLed and the others take its companies and scan them within 30 s.
// No company is ever scanned by two replicas at once (their logs say when
// each scan ran), and the stream stays exact: no duplicate, every document's
// events in docseq order.
func TestPollerReplicasShareCompaniesAndFailOver(t *testing.T) {
	bin := binary(t, "poller")
	const companies = 30
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 21, Companies: companies, Invoices: 8, Quotas: ficsim.QuotaConfig{Off: true}, Faults: ficsim.Faults{LatencyMS: 5}})
	urls, _, js := natstest.MustRunCluster(t, 3)
	ctx := context.Background()

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	tok, err := fic.NewOAuth(srv.URL, "ficsim-client", "ficsim-secret", "http://127.0.0.1:1/cb", nil).AuthorizeAutoApproved(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tokens *kvstore.Tokens
	waitFor(t, 30*time.Second, "tokens bucket", func() bool {
		tokens, err = kvstore.NewTokens(ctx, js, secret, kvstore.BucketConfig{Replicas: 3})
		return err == nil
	})
	if _, err := tokens.Put(ctx, "platform", kvstore.Connection{Token: tok, Companies: sim.CompanyIDs()}, 0); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NATS_URL="+strings.Join(urls, ","), "INCASSO_REPLICAS=3", "FIC_BASE_URL="+srv.URL,
		"FIC_CLIENT_ID=ficsim-client", "FIC_CLIENT_SECRET=ficsim-secret", "INCASSO_SECRET_KEY="+hex.EncodeToString(secret),
		"POLLER_MIN_INTERVAL=2s", "POLLER_MAX_INTERVAL=2s", "POLLER_LEASE_TTL=3s", "LOG_LEVEL=info", "LOG_FORMAT=json",
		"FIC_CLIENT_LIMITS_DISABLED=true")
	var all []*pollerReplica
	start := func(name string) *pollerReplica {
		r := &pollerReplica{name: name, addr: freeAddr(t), done: make(chan struct{}), log: &syncBuf{}}
		r.cmd = exec.Command(bin)
		r.cmd.Env = append(append([]string(nil), env...), "POLLER_HTTP_ADDR="+r.addr, "POLLER_INSTANCE_ID="+name)
		r.cmd.Stderr, r.cmd.Stdout = r.log, r.log
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.cmd.Wait(); close(r.done) }()
		all = append(all, r)
		t.Cleanup(func() { _ = r.cmd.Process.Kill(); <-r.done })
		return r
	}
	defer func() {
		if t.Failed() {
			for _, r := range all {
				t.Logf("%s:\n%s", r.name, strings.Join(r.log.lines(), "\n"))
			}
		}
	}()
	balanced := func(what string, live []*pollerReplica, within time.Duration) time.Duration {
		t.Helper()
		t0 := time.Now()
		var shares []int
		waitFor(t, within, what, func() bool {
			shares = shares[:0]
			sum, lo, hi := 0, companies, 0
			for _, r := range live {
				n := r.owned()
				shares = append(shares, n)
				sum, lo, hi = sum+n, min(lo, n), max(hi, n)
			}
			return sum == companies && lo > 0 && float64(hi)/float64(lo) <= 1.25
		})
		t.Logf("%s: shares %v after %v", what, shares, time.Since(t0).Round(100*time.Millisecond))
		return time.Since(t0)
	}

	a, b, c := start("a"), start("b"), start("c")
	balanced("three replicas", []*pollerReplica{a, b, c}, 60*time.Second)
	// Changes while replicas come and go: payments the stream must carry once.
	paid := 0
	pay := func() {
		for _, cid := range sim.CompanyIDs()[:10] {
			docs, _ := sim.Documents(cid)
			for _, d := range docs {
				if d.Type == "invoice" && d.Open() {
					ficsimtest.PayInFull(t, sim, cid, d.ID)
					paid++
					break
				}
			}
		}
	}
	pay()
	d := start("d")
	balanced("d joined", []*pollerReplica{a, b, c, d}, 30*time.Second)
	pay()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
	balanced("d left", []*pollerReplica{a, b, c}, 30*time.Second)
	pay()

	held := a.owned()
	_ = a.cmd.Process.Kill()
	<-a.done
	killed := time.Now()
	took := balanced("a SIGKILLed", []*pollerReplica{b, c}, 30*time.Second)
	// Every company is scanned after a's death, by b or c, within 30 s.
	waitFor(t, 30*time.Second-took, "every company scanned after the SIGKILL", func() bool {
		seen := map[int64]bool{}
		for _, r := range []*pollerReplica{b, c} {
			for _, s := range r.scans() {
				if s.start.After(killed) {
					seen[s.company] = true
				}
			}
		}
		return len(seen) == companies
	})
	t.Logf("a held %d companies; b and c scanned all %d within %v of the SIGKILL", held, companies, time.Since(killed).Round(100*time.Millisecond))

	// No company scanned by two replicas at once.
	byCompany := map[int64][]scan{}
	total := 0
	for _, r := range all {
		for _, s := range r.scans() {
			byCompany[s.company] = append(byCompany[s.company], s)
			total++
		}
	}
	overlaps := 0
	for cid, ss := range byCompany {
		slices.SortFunc(ss, func(x, y scan) int { return x.start.Compare(y.start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].replica != ss[i-1].replica && ss[i].start.Before(ss[i-1].end) {
				overlaps++
				if overlaps <= 5 {
					t.Errorf("company %d: scanned by %s from %s and by %s from %s to %s", cid, ss[i-1].replica,
						ss[i-1].start.Format("15:04:05.000"), ss[i].replica, ss[i].start.Format("15:04:05.000"), ss[i-1].end.Format("15:04:05.000"))
				}
			}
		}
	}
	if total < 3*companies {
		t.Errorf("only %d scans logged", total)
	}

	// The stream is exact.
	for _, r := range []*pollerReplica{b, c} {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		<-r.done
	}
	checkStreamExact(t, js, paid)
	t.Logf("%d scans by 4 replicas, none overlapping; %d payments", total, paid)
}

// checkStreamExact fails on a duplicated event id, on a document whose
// events are not numbered 1, 2, 3… in stream order, and when fewer than
// paid payment events were stored.
func checkStreamExact(t *testing.T, js jetstream.JetStream, paid int) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	last := map[string]uint64{}
	payments := 0
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
		if err != nil {
			t.Fatal(err)
		}
		if ids[e.ID()] {
			t.Errorf("event %s stored twice", e.ID())
		}
		ids[e.ID()] = true
		n, _ := strconv.ParseUint(fmt.Sprint(e.Extensions()[events.SeqExtension]), 10, 64)
		doc := e.Source() + " " + e.Subject()
		if n != last[doc]+1 {
			t.Errorf("%s: docseq %d after %d", doc, n, last[doc])
		}
		last[doc] = n
		if e.Type() == "invoice.paid" {
			payments++
		}
	}
	if payments < paid {
		t.Errorf("%d payment events for %d payments", payments, paid)
	}
}
