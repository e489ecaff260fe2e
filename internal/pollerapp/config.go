package pollerapp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/incasso-io/incasso/internal/envparse"
	"github.com/incasso-io/incasso/internal/natsrv"

	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/kvstore"
)

// Config is every setting of the poller, read from the environment (and a
// few flags). Secrets may also come from files: NAME_FILE holds the path.
type Config struct {
	FICBaseURL     string `env:"FIC_BASE_URL" envDefault:"https://api-v2.fattureincloud.it"`
	FICAccessToken string `env:"FIC_ACCESS_TOKEN"`
	FICAccessFile  string `env:"FIC_ACCESS_TOKEN_FILE"`
	FICCompanyID   int64  `env:"FIC_COMPANY_ID"`

	FICClientID     string   `env:"FIC_CLIENT_ID"`
	FICClientSecret string   `env:"FIC_CLIENT_SECRET"`
	FICSecretFile   string   `env:"FIC_CLIENT_SECRET_FILE"`
	FICRedirectURL  string   `env:"FIC_REDIRECT_URL" envDefault:"http://127.0.0.1:8085/oauth/callback"`
	FICScopes       []string `env:"FIC_SCOPES" envSeparator:" "`
	FICTokenJSON    bool     `env:"FIC_TOKEN_REQUEST_JSON" envDefault:"true"`

	FICWebhookKey   string `env:"FIC_WEBHOOK_PUBLIC_KEY"`
	FICWebhookAppID string `env:"FIC_WEBHOOK_APP_ID"`
	// WebhookLeeway is the clock skew tolerated on webhook JWTs (a token
	// refused for skew is a 401 FIC does not retry).
	WebhookLeeway time.Duration `env:"POLLER_WEBHOOK_LEEWAY" envDefault:"60s"`
	PublicURL     string        `env:"POLLER_PUBLIC_URL"`
	// AllowHTTPSink accepts an http:// POLLER_PUBLIC_URL (FIC requires
	// https: only for the sandbox, the demo and tests).
	AllowHTTPSink bool `env:"POLLER_ALLOW_HTTP_SINK"`
	// SubscriptionCheck is how often each company's webhook subscription
	// is reconciled (created, moved, verified again; see webhooksub).
	SubscriptionCheck time.Duration `env:"POLLER_SUBSCRIPTION_CHECK" envDefault:"10m"`

	FICLimits fic.Limits // FIC_HOURLY_LIMIT, FIC_MONTHLY_LIMIT, FIC_SHORT_TERM_*, FIC_BURST, FIC_CLIENT_LIMITS_DISABLED

	NATSURL   string `env:"NATS_URL"`
	NATSCreds string `env:"NATS_CREDS"`
	// NATS_USER and NATS_PASSWORD authenticate to NATS (the user defaults
	// to the embedded server's, "incasso", when only a password is given).
	NATSUser     string `env:"NATS_USER"`
	NATSPassword string `env:"NATS_PASSWORD"`
	NATSPassFile string `env:"NATS_PASSWORD_FILE"`
	DataDir      string `env:"INCASSO_DATA_DIR" envDefault:".data"`
	NATSAddr     string `env:"INCASSO_EMBEDDED_NATS_ADDR" envDefault:"127.0.0.1:4222"`
	Replicas     int    `env:"INCASSO_REPLICAS" envDefault:"1"`

	SecretKey     string `env:"INCASSO_SECRET_KEY"`
	SecretKeyFile string `env:"INCASSO_SECRET_KEY_FILE"`

	EventsMaxAge time.Duration `env:"EVENTS_MAX_AGE" envDefault:"0s"`
	EventsDedup  time.Duration `env:"EVENTS_DEDUP_WINDOW" envDefault:"24h"`

	HTTPAddr     string        `env:"POLLER_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	HTTPMaxConns int           `env:"POLLER_HTTP_MAX_CONNS" envDefault:"1024"`
	ScanShare    float64       `env:"POLLER_SCAN_SHARE" envDefault:"0.5"`
	MinInterval  time.Duration `env:"POLLER_MIN_INTERVAL" envDefault:"1m"`
	MaxInterval  time.Duration `env:"POLLER_MAX_INTERVAL" envDefault:"24h"`
	DueSoonDays  int           `env:"POLLER_DUE_SOON_DAYS" envDefault:"3"`
	LeaseTTL     time.Duration `env:"POLLER_LEASE_TTL" envDefault:"15s"`
	InstanceID   string        `env:"POLLER_INSTANCE_ID"`
	OpenOnly     bool          `env:"POLLER_SCAN_OPEN_ONLY"`
	MaxScans     int           `env:"POLLER_MAX_CONCURRENT_SCANS" envDefault:"32"`
	// WebhookWorkers: documents announced by webhooks handled at once
	// (companies served round-robin, at most 4 at once per company).
	WebhookWorkers int `env:"POLLER_WEBHOOK_WORKERS" envDefault:"8"`
	// WebhookLinger: how long a company's documents wait when its
	// webhooks arrive as a burst (20+ documents a second), to be handled
	// as one batch of page requests instead of a GET each (0s: off).
	WebhookLinger time.Duration `env:"POLLER_WEBHOOK_BURST_LINGER" envDefault:"1s"`
	// DeleteGuardShare: a scan that would announce more than this share of
	// a company's documents deleted holds the deletions (see Guard).
	DeleteGuardShare float64 `env:"POLLER_DELETE_GUARD_SHARE" envDefault:"0.2"`
	// DeleteGuardScans: complete scans that must agree with the one that
	// held deletions before they are announced without an operator's
	// confirmation (0: only `poller deletions confirm` releases them).
	DeleteGuardScans int `env:"POLLER_DELETE_GUARD_SCANS" envDefault:"1"`
	// OwnerCheck refuses a document whose id is known under another
	// company (one KV write per new document).
	OwnerCheck bool `env:"POLLER_OWNER_CHECK" envDefault:"true"`
	Pprof      bool `env:"POLLER_PPROF"` // /debug/pprof on POLLER_DEBUG_ADDR (profiling)
	// DebugAddr is the private listener of /debug/pprof: never the webhook
	// listener, which FIC (the internet) reaches.
	DebugAddr string `env:"POLLER_DEBUG_ADDR" envDefault:"127.0.0.1:6060"`

	// DemoClock "send-window" shifts the business clock into the next send
	// window when started outside it (demos and smoke tests only).
	DemoClock string `env:"INCASSO_DEMO_CLOCK"`

	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
}

// ParseConfig reads the environment given as KEY=VALUE pairs.
func ParseConfig(environ []string) (Config, error) {
	var c Config
	if err := envparse.Parse(environ, &c); err != nil {
		return c, err
	}
	return c, errors.Join(
		envparse.SecretFile(&c.NATSPassword, c.NATSPassFile, "NATS_PASSWORD_FILE"),
		envparse.SecretFile(&c.FICAccessToken, c.FICAccessFile, "FIC_ACCESS_TOKEN_FILE"),
		envparse.SecretFile(&c.FICClientSecret, c.FICSecretFile, "FIC_CLIENT_SECRET_FILE"),
		envparse.SecretFile(&c.SecretKey, c.SecretKeyFile, "INCASSO_SECRET_KEY_FILE"),
	)
}

// Manual reports single-company manual-token mode.
func (c *Config) Manual() bool { return c.FICAccessToken != "" }

// Validate returns every problem at once, each naming its setting. Secret
// values never appear in messages.
func (c *Config) Validate(forConnect bool) error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if u, err := url.Parse(c.FICBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("FIC_BASE_URL: %q is not an http(s) URL", c.FICBaseURL)
	}
	switch {
	case c.Manual() && !forConnect:
		if c.FICCompanyID <= 0 {
			bad("FIC_COMPANY_ID: required with FIC_ACCESS_TOKEN (the company the manual token belongs to)")
		}
	default:
		if c.FICClientID == "" {
			bad("FIC_CLIENT_ID: required in OAuth mode (or set FIC_ACCESS_TOKEN and FIC_COMPANY_ID for a manual token)")
		}
		if c.FICClientSecret == "" {
			bad("FIC_CLIENT_SECRET: required in OAuth mode")
		}
		if u, err := url.Parse(c.FICRedirectURL); err != nil || u.Host == "" {
			bad("FIC_REDIRECT_URL: %q is not a URL", c.FICRedirectURL)
		}
		if c.SecretKey == "" {
			bad("INCASSO_SECRET_KEY: required in OAuth mode to encrypt tokens at rest (32 bytes, e.g. `openssl rand -hex 32`)")
		} else if _, err := kvstore.ParseSecretKey(c.SecretKey); err != nil {
			bad("INCASSO_SECRET_KEY: %v", err)
		}
	}
	if c.FICWebhookKey != "" {
		if _, err := fic.ParsePublicKey(c.FICWebhookKey); err != nil {
			bad("FIC_WEBHOOK_PUBLIC_KEY: %v", err)
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("POLLER_PUBLIC_URL: %q is not an http(s) URL", c.PublicURL)
		} else if u.Scheme == "http" && !c.AllowHTTPSink {
			bad("POLLER_PUBLIC_URL: %q: FIC sends webhooks only to https sinks (POLLER_ALLOW_HTTP_SINK=true for the sandbox)", c.PublicURL)
		}
	}
	if c.ScanShare <= 0 || c.ScanShare > 1 {
		bad("POLLER_SCAN_SHARE: %v must be in (0, 1]", c.ScanShare)
	}
	if c.MinInterval <= 0 || c.MaxInterval < c.MinInterval {
		bad("POLLER_MIN_INTERVAL/POLLER_MAX_INTERVAL: need 0 < min <= max")
	}
	if c.LeaseTTL < 3*time.Second {
		bad("POLLER_LEASE_TTL: %v is shorter than 3s", c.LeaseTTL)
	}
	if c.Replicas != 1 && c.Replicas != 3 && c.Replicas != 5 {
		bad("INCASSO_REPLICAS: %d, want 1, 3 or 5", c.Replicas)
	}
	if err := c.FICLimits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxScans < 1 {
		bad("POLLER_MAX_CONCURRENT_SCANS: must be at least 1")
	}
	if c.DueSoonDays < 0 {
		bad("POLLER_DUE_SOON_DAYS: must not be negative")
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("LOG_FORMAT: %q, want json or text", c.LogFormat)
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL: %q, want debug, info, warn or error", c.LogLevel)
	}
	if c.NATSURL == "" && c.DataDir == "" {
		bad("INCASSO_DATA_DIR: required for the embedded NATS server when NATS_URL is unset")
	}
	return errors.Join(errs...)
}

// natsOpen is how this configuration reaches NATS (name: the connection's).
func (c Config) natsOpen(name string) natsrv.OpenConfig {
	return natsrv.OpenConfig{URL: c.NATSURL, Creds: c.NATSCreds, User: c.NATSUser, Password: c.NATSPassword,
		EmbeddedAddr: c.NATSAddr, StoreDir: c.DataDir + "/nats", PasswordFile: c.DataDir + "/nats/password", Name: name}
}
