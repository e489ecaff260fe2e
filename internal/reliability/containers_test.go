package reliability

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/incasso-io/incasso/internal/events"
)

const natsImage = "incasso/nats-server:local"

// A 3-node JetStream cluster of locally built FROM-scratch nats-server
// containers on a private Docker network, streams and KV at R3. While the
// poller and dunning run against it: the events stream's leader is stopped
// and restarted, then the new leader is cut off the network
// (NetworkDisconnect) and healed. Every payment is stored exactly once, no
// reminder is sent twice. Skips cleanly without Docker or without the image
// (./scripts/images.sh builds it; .ci/run does).
func TestClusterFaultsInContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("container scenario skipped with -short")
	}
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// Published ports are reached on loopback only: never let testcontainers
	// guess a gateway address.
	os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	ctx := context.Background()
	dc, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	defer dc.Close()
	if _, err := dc.Ping(ctx, client.PingOptions{}); err != nil {
		t.Skipf("no Docker engine: %v", err)
	}
	if _, err := dc.ImageInspect(ctx, natsImage); err != nil {
		t.Skipf("image %s not built (run ./scripts/images.sh): %v", natsImage, err)
	}
	nw, err := tcnetwork.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nw.Remove(ctx) }()
	names := []string{"nats-1", "nats-2", "nats-3"}
	routes := "nats://nats-1:6222,nats://nats-2:6222,nats://nats-3:6222"
	ctrs := map[string]*testcontainers.DockerContainer{}
	var urls []string
	for _, n := range names {
		c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{Started: true, ContainerRequest: testcontainers.ContainerRequest{
			Image: natsImage, Name: "incasso-test-" + n + "-" + fmt.Sprint(time.Now().UnixNano()%100000),
			Cmd: []string{"-js", "-sd", "/data", "-n", n, "--cluster_name", "incasso", "--cluster", "nats://0.0.0.0:6222",
				"--routes", routes, "--no_advertise", "-m", "8222"},
			ExposedPorts:   []string{"4222/tcp", "8222/tcp"},
			Networks:       []string{nw.Name},
			NetworkAliases: map[string][]string{nw.Name: {n}},
			WaitingFor:     wait.ForLog("Server is ready").WithStartupTimeout(60 * time.Second),
		}})
		if err != nil {
			t.Fatalf("start %s: %v", n, err)
		}
		dcont := c.(*testcontainers.DockerContainer)
		ctrs[n] = dcont
		defer func() { _ = c.Terminate(ctx) }()
		p, err := c.MappedPort(ctx, "4222/tcp")
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p.Num()))
	}
	natsURL := strings.Join(urls, ",")
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var lastErr error
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, lastErr = js.AccountInfo(ctx); lastErr == nil {
			break
		}
		if time.Now().After(deadline) {
			for n, c := range ctrs {
				if rc, err := c.Logs(ctx); err == nil {
					b := make([]byte, 4000)
					k, _ := rc.Read(b)
					t.Logf("%s logs:\n%s", n, b[:k])
				}
			}
			t.Fatalf("JetStream cluster not ready via %s: %v (connected: %v)", natsURL, lastErr, nc.IsConnected())
		}
		time.Sleep(500 * time.Millisecond)
	}

	st := startStack(t, natsURL, 31, js)
	leader := func() string {
		stream, err := js.Stream(ctx, events.StreamName)
		if err != nil {
			return ""
		}
		info, err := stream.Info(ctx)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	}
	// 1. Stop the leader, pay, restart it, pay.
	var l1 string
	waitFor(t, 30*time.Second, "a leader", func() bool { l1 = leader(); return ctrs[l1] != nil })
	stop := 0 * time.Second
	if err := ctrs[l1].Stop(ctx, &stop); err != nil {
		t.Fatal(err)
	}
	d1 := st.pay(t, js, st.open[0:4], "with the leader stopped")
	if err := ctrs[l1].Start(ctx); err != nil {
		t.Fatal(err)
	}
	d2 := st.pay(t, js, st.open[4:8], "after the restart")
	// 2. Partition the (new) leader off the network, pay, heal, pay.
	var l2 string
	waitFor(t, 30*time.Second, "a leader", func() bool { l2 = leader(); return ctrs[l2] != nil })
	if _, err := dc.NetworkDisconnect(ctx, nw.ID, client.NetworkDisconnectOptions{Container: ctrs[l2].GetContainerID(), Force: true}); err != nil {
		t.Fatal(err)
	}
	d3 := st.pay(t, js, st.open[8:12], "with the leader partitioned")
	if _, err := dc.NetworkConnect(ctx, nw.ID, client.NetworkConnectOptions{Container: ctrs[l2].GetContainerID(),
		EndpointConfig: &network.EndpointSettings{Aliases: []string{l2}}}); err != nil {
		t.Fatal(err)
	}
	d4 := st.pay(t, js, st.open[12:16], "after healing")
	nEvents, dupIDs, dupPay, mails, dupMails := st.check(t, js)
	t.Logf("leader %s stopped/restarted, leader %s partitioned/healed; payments detected in %v, %v, %v, %v; %d events, %d reminders",
		l1, l2, d1.Round(time.Millisecond), d2.Round(time.Millisecond), d3.Round(time.Millisecond), d4.Round(time.Millisecond), nEvents, mails)
	recordFigure(t, "3 nats-server containers, R3: leader stopped+restarted, new leader partitioned (NetworkDisconnect)+healed",
		fmt.Sprintf("%d payments expected, %d delivered once, %d duplicated; %d event ids, %d duplicated; %d reminders, %d duplicated; detection per phase %v / %v / %v / %v",
			len(st.paid), len(st.paid)-dupPay, dupPay, nEvents, dupIDs, mails, dupMails, d1.Round(time.Millisecond), d2.Round(time.Millisecond), d3.Round(time.Millisecond), d4.Round(time.Millisecond)))
}

// paymentsIn counts paid/partially_paid events per invoice in keys (as
// returned by readStream).
func paymentsIn(keys map[string]int) map[int64]int {
	out := map[int64]int{}
	for k, n := range keys {
		f := strings.Fields(k)
		if f[0] == "invoice.paid" || f[0] == "invoice.partially_paid" {
			var id int64
			fmt.Sscanf(f[1], "invoices/%d", &id)
			out[id] += n
		}
	}
	return out
}
