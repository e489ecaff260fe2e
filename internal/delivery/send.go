package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Result is the outcome of one HTTP attempt.
type Result struct {
	Status  int // 0: no answer
	Latency time.Duration
	Err     error // transport error or refusal, with Status 0
}

// Delivered reports a 2xx.
func (r Result) Delivered() bool { return r.Status >= 200 && r.Status < 300 }

// Gone reports a 410: the platform asks not to be called again.
func (r Result) Gone() bool { return r.Status == http.StatusGone }

func (r Result) String() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return "HTTP " + strconv.Itoa(r.Status)
}

// Request builds the signed HTTP request for e. The body is the CloudEvent
// in the endpoint's content mode; the Standard Webhooks headers sign
// "<webhook-id>.<webhook-timestamp>.<body>" with every signing key (a
// receiver mid-rotation accepts either).
func Request(ctx context.Context, ep Endpoint, e event.Event, now time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	wctx := binding.WithForceStructured(ctx)
	if ep.Mode == Binary {
		wctx = binding.WithForceBinary(ctx)
	}
	if err := cehttp.WriteRequest(wctx, binding.ToMessage(&e), req); err != nil {
		return nil, fmt.Errorf("delivery: encode %s: %w", e.ID(), err)
	}
	var body []byte
	if req.Body != nil {
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	keys := ep.SigningKeys(now)
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: endpoint %s has no signing secret", ErrInvalid, ep.ID)
	}
	var sigs []string
	for _, k := range keys {
		wh, err := standardwebhooks.NewWebhook(k)
		if err != nil {
			return nil, fmt.Errorf("%w: endpoint %s secret: %v", ErrInvalid, ep.ID, err)
		}
		s, err := wh.Sign(e.ID(), now, body)
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, s)
	}
	req.Header.Set(standardwebhooks.HeaderWebhookID, e.ID())
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
	req.Header.Set("User-Agent", "Incasso-Webhooks/1")
	return req, nil
}

// Send makes one attempt through hc (a safehttp client: the outbound guard
// refuses private addresses and redirects off the endpoint's origin).
func Send(ctx context.Context, hc *http.Client, ep Endpoint, e event.Event, now time.Time) Result {
	req, err := Request(ctx, ep, e, now)
	if err != nil {
		return Result{Err: err}
	}
	start := time.Now()
	resp, err := hc.Do(req)
	lat := time.Since(start)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // no URL twice in the log
		}
		return Result{Latency: lat, Err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return Result{Status: resp.StatusCode, Latency: lat}
}
