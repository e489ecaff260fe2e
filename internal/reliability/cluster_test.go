package reliability

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/incasso-io/incasso/internal/events"
	"github.com/incasso-io/incasso/internal/natsrv"
)

type node struct {
	name, client, cluster, dir string
	s                          *server.Server
}

func (n *node) start(t *testing.T, routes []string) {
	t.Helper()
	host, cport, _ := net.SplitHostPort(n.client)
	_, rport, _ := net.SplitHostPort(n.cluster)
	var cp, rp int
	fmt.Sscanf(cport, "%d", &cp)
	fmt.Sscanf(rport, "%d", &rp)
	s, err := natsrv.Start(natsrv.Config{Host: host, Port: cp, StoreDir: n.dir, ServerName: n.name,
		ClusterName: "incasso-test", ClusterHost: host, ClusterPort: rp, Routes: routes, NoAdvertise: true})
	if err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	n.s = s
}

// A 3-node JetStream cluster in process; streams and KV at R3. While the
// poller and dunning run against it, the events stream's leader is killed
// and later restarted: every payment transition is stored exactly once and
// no reminder is e-mailed twice.
func TestClusterLeaderLossInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster scenario skipped with -short")
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = &node{name: fmt.Sprintf("n%d", i+1), client: freeAddr(t), cluster: freeAddr(t), dir: filepath.Join(t.TempDir(), fmt.Sprint(i))}
	}
	// Routes go through cuttable proxies: links[i][j] carries i's route to j.
	links := map[[2]int]*proxy{}
	routesOf := make([][]string, 3)
	for i := range nodes {
		for j := range nodes {
			if i == j {
				continue
			}
			p := newProxy(t, nodes[j].cluster)
			links[[2]int{i, j}] = p
			routesOf[i] = append(routesOf[i], "nats://"+p.Addr())
		}
	}
	// Clients reach each node through a proxy too, so a partitioned node
	// is cut off from everything (as a node losing its network would be).
	clientLinks := make([]*proxy, 3)
	for i := range nodes {
		clientLinks[i] = newProxy(t, nodes[i].client)
	}
	partition := func(k int, cut bool) {
		for key, p := range links {
			if key[0] == k || key[1] == k {
				p.Cut(cut)
			}
		}
		clientLinks[k].Cut(cut)
	}
	for i, n := range nodes {
		n.start(t, routesOf[i])
	}
	defer func() {
		for _, n := range nodes {
			if n.s != nil {
				n.s.Shutdown()
			}
		}
	}()
	var urls []string
	for i := range nodes {
		urls = append(urls, "nats://"+clientLinks[i].Addr())
	}
	natsURL := strings.Join(urls, ",")
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "JetStream cluster ready", func() bool {
		_, err := js.AccountInfo(ctx)
		return err == nil
	})

	st := startStack(t, natsURL, 21, js)
	info, err := func() (*jetstream.StreamInfo, error) {
		stream, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			return nil, err
		}
		return stream.Info(ctx)
	}()
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 {
		t.Fatalf("events stream replicas %d, want 3", info.Config.Replicas)
	}
	victimIdx := -1
	for i, n := range nodes {
		if n.name == info.Cluster.Leader {
			victimIdx = i
		}
	}
	if victimIdx < 0 {
		t.Fatalf("leader %q not found", info.Cluster.Leader)
	}
	victim := nodes[victimIdx]
	victim.s.Shutdown()
	victim.s.WaitForShutdown()
	dKill := st.pay(t, js, st.open[0:5], "while the leader is down")
	victim.start(t, routesOf[victimIdx]) // restart with its store
	st.pay(t, js, st.open[5:10], "after the restart")

	// Partition a node (the current leader if known) from the other two
	// and from clients through the proxies, pay, heal, pay.
	part := 0
	if stream, err := js.Stream(ctx, events.StreamName); err == nil {
		if info, err := stream.Info(ctx); err == nil && info.Cluster != nil {
			for i, n := range nodes {
				if n.name == info.Cluster.Leader {
					part = i
				}
			}
		}
	}
	partition(part, true)
	dPart := st.pay(t, js, st.open[10:14], "with a node partitioned")
	partition(part, false)
	st.pay(t, js, st.open[14:16], "after healing")

	nEvents, dupIDs, dupPay, mails, dupMails := st.check(t, js)
	t.Logf("leader %s killed: payments detected in %v; node %s partitioned: in %v; %d events, %d duplicated ids; %d reminders, %d duplicated",
		victim.name, dKill.Round(time.Millisecond), nodes[part].name, dPart.Round(time.Millisecond), nEvents, dupIDs, mails, dupMails)
	recordFigure(t, "3-node cluster (in process, routes and clients through cuttable TCP proxies): leader killed+restarted, then a node partitioned+healed",
		fmt.Sprintf("%d payments expected, %d delivered once, %d duplicated; %d event ids, %d duplicated; %d reminders, %d duplicated; detection: %v with the leader down, %v under partition",
			len(st.paid), len(st.paid)-dupPay, dupPay, nEvents, dupIDs, mails, dupMails, dKill.Round(time.Millisecond), dPart.Round(time.Millisecond)))
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
