package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The documented command line works (on a free port) and prints what a user
// needs: base URL, company ids, token.
func TestRunPrintsBaseURLCompaniesAndToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuf
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, strings.Fields("-addr "+addr+" -seed 1 -companies 2 -invoices 500 -token demo-token"), &out, &errOut)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "try:") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"http://" + addr, "demo-token", "1000001 1000002"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/c/1000002/issued_documents?type=invoice&per_page=100", nil)
	req.Header.Set("Authorization", "Bearer demo-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("list: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	var out, errOut syncBuf
	if err := run(context.Background(), []string{"-companies", "-1", "-addr", "127.0.0.1:0"}, &out, &errOut); err == nil {
		t.Error("negative companies accepted")
	}
	if err := run(context.Background(), []string{"-nope"}, &out, &errOut); err == nil {
		t.Error("unknown flag accepted")
	}
	if err := run(context.Background(), []string{"-webhook-key", "/does/not/exist"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "-webhook-key") {
		t.Errorf("missing key file: %v", err)
	}
}
