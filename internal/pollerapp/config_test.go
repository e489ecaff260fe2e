package pollerapp

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestInvalidConfigNamesTheSetting(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		connect bool
		want    []string
	}{
		{"nothing configured", nil, false, []string{"FIC_CLIENT_ID", "FIC_CLIENT_SECRET", "INCASSO_SECRET_KEY"}},
		{"manual token without company", []string{"FIC_ACCESS_TOKEN=x"}, false, []string{"FIC_COMPANY_ID"}},
		{"bad key", []string{"FIC_CLIENT_ID=a", "FIC_CLIENT_SECRET=b", "INCASSO_SECRET_KEY=short"}, false, []string{"INCASSO_SECRET_KEY"}},
		{"bad numbers", []string{"FIC_ACCESS_TOKEN=x", "FIC_COMPANY_ID=1", "POLLER_SCAN_SHARE=2", "INCASSO_REPLICAS=2", "POLLER_LEASE_TTL=1s", "LOG_FORMAT=xml"}, false,
			[]string{"POLLER_SCAN_SHARE", "INCASSO_REPLICAS", "POLLER_LEASE_TTL", "LOG_FORMAT"}},
		{"bad urls", []string{"FIC_ACCESS_TOKEN=x", "FIC_COMPANY_ID=1", "FIC_BASE_URL=ftp://x", "POLLER_PUBLIC_URL=::"}, false, []string{"FIC_BASE_URL", "POLLER_PUBLIC_URL"}},
		{"bad webhook key", []string{"FIC_ACCESS_TOKEN=x", "FIC_COMPANY_ID=1", "FIC_WEBHOOK_PUBLIC_KEY=nope"}, false, []string{"FIC_WEBHOOK_PUBLIC_KEY"}},
		{"connect needs oauth", []string{"FIC_ACCESS_TOKEN=x"}, true, []string{"FIC_CLIENT_ID"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig(tc.env)
			if err == nil {
				err = cfg.Validate(tc.connect)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %s:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "=x") {
				t.Error("a secret value is echoed")
			}
		})
	}
	if _, err := ParseConfig([]string{"FIC_COMPANY_ID=abc"}); err == nil || !strings.Contains(err.Error(), "FIC_COMPANY_ID") {
		t.Errorf("unparsable number: %v", err)
	}
	if _, err := ParseConfig([]string{"FIC_ACCESS_TOKEN_FILE=/does/not/exist"}); err == nil || !strings.Contains(err.Error(), "FIC_ACCESS_TOKEN_FILE") {
		t.Errorf("missing secret file: %v", err)
	}
	// The binary's entry point exits with the same message.
	err := Command(context.Background(), nil, []string{"FIC_ACCESS_TOKEN=x"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "FIC_COMPANY_ID") {
		t.Errorf("run: %v", err)
	}
	if err := Command(context.Background(), []string{"frobnicate"}, []string{"FIC_ACCESS_TOKEN=x", "FIC_COMPANY_ID=1"}, io.Discard, io.Discard); err == nil {
		t.Error("unknown command accepted")
	}
}
