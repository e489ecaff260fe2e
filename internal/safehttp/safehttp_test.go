package safehttp_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/incasso-io/incasso/internal/safehttp"
)

func port(t *testing.T, raw string) int {
	u, _ := url.Parse(raw)
	n, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Every way of pointing a request at the network Incasso runs in is
// refused: a literal private or metadata address, a name that resolves to
// loopback, a redirect to another origin, a port or scheme not allowed.
func TestGuard(t *testing.T) {
	var hitB atomic.Int32
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitB.Add(1) }))
	defer b.Close()
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, b.URL+"/stolen", http.StatusTemporaryRedirect)
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		default:
			w.WriteHeader(204)
		}
	}))
	defer a.Close()
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ports := []int{port(t, a.URL), port(t, b.URL)}
	allowed := safehttp.Policy{AllowHTTP: true, Ports: ports, AllowNets: loop}.Client()
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		ok     bool
	}{
		{"allowed origin", allowed, a.URL + "/ok", true},
		{"redirect within the origin", allowed, a.URL + "/same", true},
		{"redirect to another origin", allowed, a.URL + "/redirect", false},
		{"loopback not allowed", safehttp.Policy{AllowHTTP: true, Ports: ports}.Client(), a.URL + "/ok", false},
		{"a name resolving to loopback", safehttp.Policy{AllowHTTP: true, Ports: ports}.Client(), strings.Replace(a.URL, "127.0.0.1", "localhost", 1) + "/ok", false},
		{"port not allowed", safehttp.Policy{AllowHTTP: true, AllowNets: loop}.Client(), a.URL + "/ok", false},
		{"http not allowed", safehttp.Policy{Ports: ports, AllowNets: loop}.Client(), a.URL + "/ok", false},
		{"cloud metadata", safehttp.Policy{AllowHTTP: true}.Client(), "http://169.254.169.254/latest/meta-data/", false},
		{"private network", safehttp.Policy{}.Client(), "https://10.0.0.5/hook", false},
		{"credentials in the URL", allowed, strings.Replace(a.URL, "http://", "http://user:pw@", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.client.Get(tc.url)
			if resp != nil {
				resp.Body.Close()
			}
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && (err == nil || !errors.Is(err, safehttp.ErrRefused)) {
				t.Fatalf("err = %v, want ErrRefused", err)
			}
		})
	}
	if hitB.Load() != 0 {
		t.Fatal("the other origin was reached through the redirect")
	}
}
