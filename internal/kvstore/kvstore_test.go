package kvstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2"

	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natstest"
	"github.com/incasso-io/incasso/internal/poller"
	rcv "github.com/incasso-io/incasso/internal/receivables"
)

func TestSnapshotsCAS(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	s, err := kvstore.NewSnapshots(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	snap := rcv.Snapshot{Invoice: rcv.Invoice{CompanyID: 1, ID: 2, Number: "1"}}
	if _, rev, err := s.Get(ctx, 1, 2); err != nil || rev != 0 {
		t.Fatalf("empty get: %d %v", rev, err)
	}
	rev, err := s.Put(ctx, 1, 2, snap, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, 1, 2, snap, 0); !errors.Is(err, rcv.ErrConflict) {
		t.Errorf("create twice: %v", err)
	}
	rev2, err := s.Put(ctx, 1, 2, snap, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, 1, 2, snap, rev); !errors.Is(err, rcv.ErrConflict) {
		t.Errorf("stale update: %v", err)
	}
	if _, err := s.Put(ctx, 1, 3, snap, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, 10, 2, snap, 0); err != nil {
		t.Fatal(err)
	}
	ids, err := s.IDs(ctx, 1)
	if err != nil || len(ids) != 2 {
		t.Errorf("ids of company 1: %v %v", ids, err)
	}
	if err := s.Delete(ctx, 1, 2, snap, rev); !errors.Is(err, rcv.ErrConflict) {
		t.Errorf("stale delete: %v", err)
	}
	tomb := snap
	tomb.Seq = 9
	if err := s.Delete(ctx, 1, 2, tomb, rev2); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.IDs(ctx, 1); len(ids) != 1 {
		t.Errorf("after delete: %v", ids)
	}
	// The tombstone keeps the sequence number, with a revision to write over.
	got, trev, err := s.Get(ctx, 1, 2)
	if err != nil || !got.Deleted || got.Seq != 9 || trev == 0 {
		t.Fatalf("tombstone: %+v rev %d err %v", got, trev, err)
	}
	if _, err := s.Put(ctx, 1, 2, snap, 0); !errors.Is(err, rcv.ErrConflict) {
		t.Errorf("a create over a tombstone must conflict: %v", err)
	}
	if _, err := s.Put(ctx, 1, 2, snap, trev); err != nil {
		t.Errorf("restore over the tombstone: %v", err)
	}
	if ids, _ := s.IDs(ctx, 1); len(ids) != 2 {
		t.Errorf("after restore: %v", ids)
	}
}

func TestTokensEncryptedAtRest(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	key, err := kvstore.ParseSecretKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := kvstore.NewTokens(ctx, js, key, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	conn := kvstore.Connection{Token: &oauth2.Token{AccessToken: "a/very-secret-access", RefreshToken: "r/very-secret-refresh", Expiry: time.Now().Add(time.Hour)}, Companies: []int64{7, 8}}
	rev, err := tokens.Put(ctx, "main", conn, 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tokens.KV.Get(ctx, "main")
	if bytes.Contains(raw.Value(), []byte("very-secret")) {
		t.Fatal("token readable in the KV bytes")
	}
	got, grev, err := tokens.Get(ctx, "main")
	if err != nil || grev != rev || got.Token.RefreshToken != "r/very-secret-refresh" || len(got.Companies) != 2 {
		t.Fatalf("get: %+v %d %v", got, grev, err)
	}
	if _, err := tokens.Put(ctx, "main", conn, 0); !errors.Is(err, rcv.ErrConflict) {
		t.Errorf("CAS: %v", err)
	}
	// Moving the ciphertext under another name fails authentication.
	if _, err := tokens.KV.Put(ctx, "other", raw.Value()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tokens.Get(ctx, "other"); err == nil {
		t.Error("ciphertext moved to another key decrypted")
	}
	// A wrong key cannot read it, and says what to check.
	wrong, _ := kvstore.NewTokens(ctx, js, bytes.Repeat([]byte{1}, 32), kvstore.BucketConfig{})
	if _, _, err := wrong.Get(ctx, "main"); err == nil || !bytes.Contains([]byte(err.Error()), []byte("INCASSO_SECRET_KEY")) {
		t.Errorf("wrong key: %v", err)
	}
	if err != nil && bytes.Contains([]byte(err.Error()), []byte("secret-access")) {
		t.Error("token in error")
	}
	for _, bad := range []string{"", "short", "zz" + string(bytes.Repeat([]byte("0"), 62))} {
		if _, err := kvstore.ParseSecretKey(bad); err == nil {
			t.Errorf("ParseSecretKey(%q) accepted", bad)
		}
	}
	if _, err := tokens.Put(ctx, "bad name!", conn, 0); err == nil {
		t.Error("bad connection name accepted")
	}
}

func TestLeasesExpireAndTakeOver(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	a, err := kvstore.NewLeases(ctx, js, "replica-a", time.Second, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := kvstore.NewLeases(ctx, js, "replica-b", time.Second, kvstore.BucketConfig{})
	rev, err := a.Acquire(ctx, 42)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, 42); !errors.Is(err, kvstore.ErrLeaseHeld) {
		t.Fatalf("b acquired a held lease: %v", err)
	}
	if rev, err = a.Renew(ctx, 42, rev); err != nil {
		t.Fatal(err)
	}
	// a dies (stops renewing): b gets the company within one TTL.
	start := time.Now()
	var brev uint64
	for {
		if brev, err = b.Acquire(ctx, 42); err == nil {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("no takeover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("takeover after %v (TTL 1s)", time.Since(start))
	if _, err := a.Renew(ctx, 42, rev); !errors.Is(err, kvstore.ErrLeaseLost) {
		t.Errorf("a renewed a lost lease: %v", err)
	}
	if err := b.Release(ctx, 42, brev); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, 42); err != nil {
		t.Errorf("acquire after release: %v", err)
	}
}

func TestRekey(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, _ := kvstore.NewTokens(ctx, js, oldKey, kvstore.BucketConfig{})
	for _, n := range []string{"a", "b"} {
		if _, err := old.Put(ctx, n, kvstore.Connection{Token: &oauth2.Token{AccessToken: "a/" + n}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	nw, _ := old.Open(newKey)
	if n, err := nw.Rekey(ctx, old, nil); err != nil || n != 2 {
		t.Fatalf("rekey: %d %v", n, err)
	}
	if n, err := nw.Rekey(ctx, old, nil); err != nil || n != 0 {
		t.Fatalf("second run: %d %v", n, err)
	}
	if c, _, err := nw.Get(ctx, "b"); err != nil || c.Token.AccessToken != "a/b" {
		t.Fatalf("after rekey: %v %v", c, err)
	}
	if _, _, err := old.Get(ctx, "a"); err == nil {
		t.Error("old key still decrypts")
	}
}

// PutAll writes a batch with Put's compare-and-set, per write: on one
// server and on a 3-node cluster at R3 (where a failed create can surface
// as a different API error).
func TestSnapshotsPutAll(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
		js       func(*testing.T) jetstream.JetStream
	}{
		{"R1", 1, func(t *testing.T) jetstream.JetStream { _, _, js := natstest.MustRunJetStream(t); return js }},
		{"R3", 3, func(t *testing.T) jetstream.JetStream { _, _, js := natstest.MustRunCluster(t, 3); return js }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := kvstore.NewSnapshots(ctx, tc.js(t), kvstore.BucketConfig{Replicas: tc.replicas})
			if err != nil {
				t.Fatal(err)
			}
			snap := func(number string) rcv.Snapshot {
				return rcv.Snapshot{Invoice: rcv.Invoice{CompanyID: 1, Number: number}}
			}
			revA, _ := s.Put(ctx, 1, 10, snap("a"), 0)
			revB, _ := s.Put(ctx, 1, 11, snap("b"), 0)
			if _, err := s.Put(ctx, 1, 11, snap("b2"), revB); err != nil {
				t.Fatal(err)
			}
			revP, _ := s.Put(ctx, 1, 12, snap("p"), 0)
			if err := s.Delete(ctx, 1, 12, snap("p"), revP); err != nil { // a tombstone stays
				t.Fatal(err)
			}
			revs, errs := s.PutAll(ctx, []rcv.SnapshotWrite{
				{CompanyID: 1, ID: 20, Snapshot: snap("new"), Rev: 0},      // create
				{CompanyID: 1, ID: 10, Snapshot: snap("a2"), Rev: revA},    // update at the read revision
				{CompanyID: 1, ID: 11, Snapshot: snap("stale"), Rev: revB}, // written since it was read
				{CompanyID: 1, ID: 10, Snapshot: snap("again"), Rev: 0},    // create of an existing key
				{CompanyID: 1, ID: 12, Snapshot: snap("back"), Rev: 0},     // create over a tombstone
			})
			want := []bool{true, true, false, false, false} // stored?
			for i, err := range errs {
				if ok := err == nil; ok != want[i] {
					t.Errorf("write %d: err %v, want stored=%v", i, err, want[i])
				}
				if err != nil && !errors.Is(err, rcv.ErrConflict) {
					t.Errorf("write %d: %v, want ErrConflict", i, err)
				}
				if (err == nil) != (revs[i] > 0) {
					t.Errorf("write %d: revision %d with err %v", i, revs[i], err)
				}
			}
			for id, number := range map[int64]string{20: "new", 10: "a2", 11: "b2"} {
				if got, _, err := s.Get(ctx, 1, id); err != nil || got.Invoice.Number != number {
					t.Errorf("snapshot %d: %q %v, want %q", id, got.Invoice.Number, err, number)
				}
			}
			// What PutAll refuses over a tombstone, a put at the tombstone's
			// revision (the retry, after Get) stores.
			tomb, trev, err := s.Get(ctx, 1, 12)
			if err != nil || !tomb.Deleted {
				t.Fatalf("tombstone: %+v %v", tomb, err)
			}
			if _, err := s.Put(ctx, 1, 12, snap("back"), trev); err != nil {
				t.Errorf("put over a tombstone: %v", err)
			}
		})
	}
}

// Documents is the ledger of a company: live documents only.
func TestSnapshotsDocuments(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	s, err := kvstore.NewSnapshots(ctx, js, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 3; id++ {
		if _, err := s.Put(ctx, 7, id, rcv.Snapshot{Invoice: rcv.Invoice{CompanyID: 7, ID: id, Number: fmt.Sprint(id)}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(ctx, 8, 9, rcv.Snapshot{Invoice: rcv.Invoice{CompanyID: 8, ID: 9}}, 0); err != nil {
		t.Fatal(err)
	}
	_, rev, _ := s.Get(ctx, 7, 2)
	if err := s.Delete(ctx, 7, 2, rcv.Snapshot{Invoice: rcv.Invoice{CompanyID: 7, ID: 2}}, rev); err != nil {
		t.Fatal(err)
	}
	docs, err := s.Documents(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, d := range docs {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{1, 3}) {
		t.Fatalf("documents of company 7: %v", ids)
	}
}

// Replicas configured with different lease TTLs all follow the bucket's
// (issue #19): a replica starting with a short TTL no longer shortens the
// bucket under another one's leases, which then expired between that
// replica's renewals and were taken.
func TestLeaseTTLIsTheBucketsForEveryReplica(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	slow, err := kvstore.NewLeases(ctx, js, "replica-slow", 30*time.Second, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := kvstore.NewLeases(ctx, js, "replica-fast", 3*time.Second, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := slow.KV.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TTL() != 30*time.Second || fast.TTL != 30*time.Second || slow.TTL != 30*time.Second {
		t.Fatalf("bucket TTL %v, the replicas renew on %v and %v; want all 30s", st.TTL(), slow.TTL, fast.TTL)
	}
	if fast.Configured != 3*time.Second {
		t.Errorf("the configured TTL is lost for the warning: %v", fast.Configured)
	}
	// The slow replica's lease, renewed on its 10 s cadence, is not taken
	// by the fast one in between.
	rev, err := slow.Acquire(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3500 * time.Millisecond) // longer than the fast replica's own TTL
	if _, err := fast.Acquire(ctx, 7); !errors.Is(err, kvstore.ErrLeaseHeld) {
		t.Fatalf("the fast replica took a lease renewed in time: %v", err)
	}
	if _, err := slow.Renew(ctx, 7, rev); err != nil {
		t.Errorf("renew: %v", err)
	}
}

// The members bucket's TTL is the same for every replica, whatever each
// one's POLLER_LEASE_TTL: a replica with a short setting cannot make
// another look dead between its heartbeats (issue #19: a 30 s replica lost
// its leases three times a minute next to a 3 s one).
func TestMembershipTTLIsTheBucketsForEveryReplica(t *testing.T) {
	_, _, js := natstest.MustRunJetStream(t)
	ctx := context.Background()
	slow, err := kvstore.NewPartitions(ctx, js, "replica-slow", 6*time.Second, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := kvstore.NewPartitions(ctx, js, "replica-fast", 2*time.Second, kvstore.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if slow.TTL() != 6*time.Second || fast.TTL() != 6*time.Second || fast.Configured != 2*time.Second {
		t.Fatalf("TTLs %v and %v (configured %v), want both the bucket's 6s", slow.TTL(), fast.TTL(), fast.Configured)
	}
	if err := slow.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // longer than the fast replica's own TTL
	members, err := fast.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(members, "replica-slow") {
		t.Errorf("members %v: the slow replica, renewed within the bucket's TTL, looks dead", members)
	}
	// A replica that leaves is no longer a member at once.
	if err := slow.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if members, _ = fast.Members(ctx); slices.Contains(members, "replica-slow") {
		t.Errorf("members %v after it left", members)
	}
	// A partition taken is not taken twice; released, it is free.
	h, err := slow.Claim(ctx, 5, poller.Holding{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Claim(ctx, 5, poller.Holding{}); !errors.Is(err, kvstore.ErrPartitionTaken) {
		t.Errorf("a held partition claimed again: %v", err)
	}
	if err := slow.Release(ctx, 5, h); err != nil {
		t.Fatal(err)
	}
	if hs, _ := fast.Holdings(ctx); len(hs) != 0 {
		t.Errorf("holdings after the release: %v", hs)
	}
}
