package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// scaleOut is the -replicas mode: the initial sync of every company by
// several poller replicas, each replica's share, the idle cluster's cost
// (CPU of each process, JetStream messages stored and API requests per
// second), RSS per company, and the failover after a SIGKILL.
type scaleOut struct {
	bin        string
	env        []string
	replicas   int
	companies  int
	total      int
	idle       time.Duration
	stagger    time.Duration // between two replicas' starts
	js         jetstream.JetStream
	natsPID    int
	monitorURL string
}

type replica struct {
	name, addr string
	cmd        *exec.Cmd
}

func (s *scaleOut) run(ctx context.Context) error {
	var reps []*replica
	start := time.Now()
	for i := range s.replicas {
		if i > 0 {
			time.Sleep(s.stagger)
		}
		r := &replica{name: fmt.Sprintf("poller-%d", i+1), addr: freeAddr()}
		r.cmd = exec.Command(s.bin)
		r.cmd.Env = append(append([]string(nil), s.env...), "POLLER_HTTP_ADDR="+r.addr, "POLLER_INSTANCE_ID="+r.name)
		r.cmd.Stderr = os.Stderr
		if err := r.cmd.Start(); err != nil {
			return err
		}
		reps = append(reps, r)
	}
	defer func() {
		for _, r := range reps {
			if r.cmd.ProcessState == nil {
				_ = r.cmd.Process.Signal(os.Interrupt)
				_ = r.cmd.Wait()
			}
		}
	}()
	peak := map[string]int64{}
	for {
		time.Sleep(250 * time.Millisecond)
		for _, r := range reps {
			peak[r.name] = max(peak[r.name], rss(r.cmd.Process.Pid))
		}
		n, err := countCreated(ctx, s.js)
		if err == nil && n >= s.total {
			break
		}
		if time.Since(start) > 30*time.Minute {
			return fmt.Errorf("initial sync did not finish in 30 minutes")
		}
	}
	syncDur := time.Since(start)
	fmt.Printf("initial sync: %d companies, %d documents, %d replicas: %v (%.0f docs/s)\n",
		s.companies, s.total, s.replicas, syncDur.Round(100*time.Millisecond), float64(s.total)/syncDur.Seconds())
	time.Sleep(10 * time.Second) // let the last scans and the shares settle
	shares := func(rs []*replica) []int {
		var out []int
		for _, r := range rs {
			out = append(out, int(metric(r.addr, "incasso_companies_owned")))
		}
		return out
	}
	sh := shares(reps)
	lo, hi, sum := sh[0], sh[0], 0
	for _, v := range sh {
		lo, hi, sum = min(lo, v), max(hi, v), sum+v
	}
	ratio := 0.0
	if lo > 0 {
		ratio = float64(hi) / float64(lo)
	}
	fmt.Printf("shares: %v (sum %d, max/min %.3f)\n", sh, sum, ratio)
	for i, r := range reps {
		rs := rss(r.cmd.Process.Pid)
		perCo := 0.0
		if sh[i] > 0 {
			perCo = float64(rs) / float64(sh[i]) / 1024
		}
		fmt.Printf("  %s: RSS %.1f MB (peak during sync %.1f MB), %.1f KiB per company held\n", r.name, float64(rs)/1e6, float64(peak[r.name])/1e6, perCo)
	}

	// Idle.
	cpu0 := map[string]time.Duration{}
	for _, r := range reps {
		cpu0[r.name] = cpu(r.cmd.Process.Pid)
	}
	nats0 := cpu(s.natsPID)
	stored0, err := storedPerStream(ctx, s.js)
	if err != nil {
		return err
	}
	api0 := jsAPITotal(s.monitorURL)
	t0 := time.Now()
	time.Sleep(s.idle)
	el := time.Since(t0).Seconds()
	stored1, err := storedPerStream(ctx, s.js)
	if err != nil {
		return err
	}
	api1 := jsAPITotal(s.monitorURL)
	fmt.Printf("idle for %v:\n", s.idle)
	for _, r := range reps {
		c := cpu(r.cmd.Process.Pid) - cpu0[r.name]
		fmt.Printf("  %s CPU %.2f s (%.2f %% of a core), %d goroutines\n", r.name, c.Seconds(), 100*c.Seconds()/el, int(metric(r.addr, "go_goroutines")))
	}
	fmt.Printf("  nats-server CPU %.2f s (%.2f %% of a core)\n", (cpu(s.natsPID) - nats0).Seconds(), 100*(cpu(s.natsPID)-nats0).Seconds()/el)
	var total uint64
	type d struct {
		name string
		n    uint64
	}
	var ds []d
	for name, v := range stored1 {
		if n := v - stored0[name]; n > 0 {
			total += n
			ds = append(ds, d{name, n})
		}
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].n > ds[j].n })
	fmt.Printf("  JetStream messages stored: %.2f/s", float64(total)/el)
	for _, x := range ds {
		fmt.Printf("; %s %.2f/s", x.name, float64(x.n)/el)
	}
	fmt.Println()
	if api0 >= 0 && api1 >= 0 {
		fmt.Printf("  JetStream API requests: %.2f/s\n", float64(api1-api0)/el)
	}

	// SIGKILL one replica: how long until the others hold its companies.
	victim := reps[0]
	before := sh[0]
	_ = victim.cmd.Process.Signal(syscall.SIGKILL)
	_ = victim.cmd.Wait()
	killed := time.Now()
	rest := reps[1:]
	for {
		sh := shares(rest)
		n := 0
		for _, v := range sh {
			n += v
		}
		if n >= s.companies {
			fmt.Printf("failover: %s (%d companies) SIGKILLed; the others hold all %d companies after %v, shares %v\n",
				victim.name, before, s.companies, time.Since(killed).Round(100*time.Millisecond), sh)
			break
		}
		if time.Since(killed) > 5*time.Minute {
			return fmt.Errorf("failover: after 5 minutes the others hold %d of %d companies", n, s.companies)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

// metric reads one unlabelled metric (or the sum of its series) from a
// poller's /metrics.
func metric(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// storedPerStream returns every stream's last sequence: what it has
// stored since it was created.
func storedPerStream(ctx context.Context, js jetstream.JetStream) (map[string]uint64, error) {
	out := map[string]uint64{}
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		out[info.Config.Name] = info.State.LastSeq
	}
	return out, l.Err()
}

// jsAPITotal is the JetStream API requests the server has answered (-1:
// unknown).
func jsAPITotal(monitorURL string) int64 {
	resp, err := http.Get(monitorURL + "/jsz")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var v struct {
		API struct {
			Total int64 `json:"total"`
		} `json:"api"`
	}
	if json.NewDecoder(resp.Body).Decode(&v) != nil {
		return -1
	}
	return v.API.Total
}
