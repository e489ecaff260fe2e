package reliability

import (
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/incasso-io/incasso/internal/ficsim"
	"github.com/incasso-io/incasso/internal/ficsimtest"
	"github.com/incasso-io/incasso/internal/natstest"
)

var soak = flag.Duration("soak", 0, "run the soak scenario for this long (e.g. -soak 30m); skipped when 0")

// TestSoak: for the -soak duration, ficsim keeps changing (payments, new
// invoices, deletions) while the real poller binary is SIGKILLed and
// restarted at random, with 5% of FIC requests failing; at the end, after a
// clean run, no event id and no creation is stored twice. On demand only.
func TestSoak(t *testing.T) {
	if *soak == 0 {
		t.Skip("soak scenario runs only with -soak DURATION")
	}
	bin := binary(t, "poller")
	sim, srv := ficsimtest.Start(t, ficsim.Config{Seed: 41, Companies: 2, Invoices: 800, Quotas: ficsim.QuotaConfig{Off: true}, Faults: ficsim.Faults{LatencyMS: 20, ErrorRatio: 0.05}})
	ns, _, js := natstest.MustRunJetStream(t)
	cid := sim.CompanyIDs()[0]
	env := append(os.Environ(), "NATS_URL="+ns.ClientURL(), "FIC_BASE_URL="+srv.URL, "FIC_ACCESS_TOKEN="+sim.Token(),
		fmt.Sprintf("FIC_COMPANY_ID=%d", cid), "POLLER_MIN_INTERVAL=2s", "POLLER_MAX_INTERVAL=2s", "POLLER_LEASE_TTL=3s",
		"LOG_LEVEL=error", "FIC_CLIENT_LIMITS_DISABLED=true", "POLLER_INSTANCE_ID=soak")
	r := mrand.New(mrand.NewPCG(41, 1))
	stop := time.Now().Add(*soak)
	var mu sync.Mutex
	paid := map[int64]bool{}
	kills := 0
	go func() {
		for time.Now().Before(stop) {
			time.Sleep(200 * time.Millisecond)
			docs, _ := sim.Documents(cid)
			if len(docs) == 0 {
				continue
			}
			d := docs[r.IntN(len(docs))]
			id := d.ID
			switch k := r.IntN(10); {
			case k < 5:
				if _, err := sim.Pay(cid, id, ficsim.PaymentSpec{}); err == nil {
					mu.Lock()
					paid[id] = true
					mu.Unlock()
				}
			case k < 8:
				_, _ = sim.CreateDocument(cid, ficsim.NewDocument{})
			default:
				_ = sim.DeleteDocument(cid, id)
			}
		}
	}()
	for time.Now().Before(stop) {
		cmd := exec.Command(bin)
		cmd.Env = append(env, "POLLER_HTTP_ADDR="+freeAddr(t))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(500+r.IntN(4000)) * time.Millisecond)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		kills++
	}
	time.Sleep(300 * time.Millisecond)
	final := exec.Command(bin)
	final.Env = append(env, "POLLER_HTTP_ADDR="+freeAddr(t))
	if err := final.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(15 * time.Second) // several clean scans
	_ = final.Process.Signal(syscall.SIGTERM)
	_ = final.Wait()
	ids, keys := stored(t, js)
	dup := 0
	for _, n := range ids {
		if n > 1 {
			dup++
		}
	}
	for k, n := range keys {
		if strings.HasSuffix(strings.Fields(k)[0], ".created") && n > 1 {
			t.Errorf("%s stored %d times", k, n)
		}
	}
	if dup > 0 {
		t.Errorf("%d event ids duplicated", dup)
	}
	mu.Lock()
	npaid := len(paid)
	mu.Unlock()
	t.Logf("soak %v: %d SIGKILLs, %d events, %d duplicated ids, %d invoices paid", *soak, kills, len(ids), dup, npaid)
	recordFigure(t, fmt.Sprintf("soak %v (on demand)", *soak), fmt.Sprintf("%d SIGKILLs under continuous change with 5%% FIC 5xx; %d events, %d duplicated ids", kills, len(ids), dup))
}
