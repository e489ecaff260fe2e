package dunningapp

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/incasso-io/incasso/internal/envparse"
	"github.com/incasso-io/incasso/internal/fic"
	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
	"github.com/incasso-io/incasso/internal/notify"
	"github.com/incasso-io/incasso/internal/safehttp"
)

// Config of the dunning service and CLI (environment; secrets also as
// NAME_FILE).
type Config struct {
	NATSURL   string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	NATSCreds string `env:"NATS_CREDS"`
	// NATS_USER and NATS_PASSWORD authenticate to NATS (the user defaults
	// to the embedded server's, "incasso", when only a password is given).
	NATSUser     string `env:"NATS_USER"`
	NATSPassword string `env:"NATS_PASSWORD"`
	NATSPassFile string `env:"NATS_PASSWORD_FILE"`
	// EmbeddedPasswordFile is the password the poller's embedded NATS
	// generated, used when no other NATS credentials are given (a local
	// run: poller and dunning on one machine).
	EmbeddedPasswordFile string `env:"INCASSO_EMBEDDED_NATS_PASSWORD_FILE" envDefault:".data/nats/password"`
	Replicas             int    `env:"INCASSO_REPLICAS" envDefault:"1"`

	FICBaseURL     string `env:"FIC_BASE_URL" envDefault:"https://api-v2.fattureincloud.it"`
	FICAccessToken string `env:"FIC_ACCESS_TOKEN"`
	FICAccessFile  string `env:"FIC_ACCESS_TOKEN_FILE"`
	// OAuth mode (no FIC_ACCESS_TOKEN): the poller's encrypted connection
	// store, for every company connected there (same variables as the
	// poller's).
	FICClientID     string `env:"FIC_CLIENT_ID"`
	FICClientSecret string `env:"FIC_CLIENT_SECRET"`
	FICSecretFile   string `env:"FIC_CLIENT_SECRET_FILE"`
	FICRedirectURL  string `env:"FIC_REDIRECT_URL" envDefault:"http://127.0.0.1:8085/oauth/callback"`
	FICTokenJSON    bool   `env:"FIC_TOKEN_REQUEST_JSON" envDefault:"true"`
	SecretKey       string `env:"INCASSO_SECRET_KEY"`
	// DataDir keeps refreshed FIC tokens that could not be saved to NATS
	// yet (OAuth mode), so that an outage or a crash does not lose them.
	DataDir       string `env:"INCASSO_DATA_DIR" envDefault:".data-dunning"`
	SecretKeyFile string `env:"INCASSO_SECRET_KEY_FILE"`
	// FICLimits budgets the freshness checks (one GET per invoice per send)
	// with the same variables and defaults as the poller.
	FICLimits fic.Limits

	PolicyFile string `env:"DUNNING_POLICY_FILE"`
	// TemplatesDir overrides the shipped letter templates file by file
	// (see notify.NewRenderer); validated at start.
	TemplatesDir string `env:"DUNNING_TEMPLATES_DIR"`
	RatesFile    string `env:"DUNNING_INTEREST_RATES_FILE"`

	SMTPHost     string `env:"SMTP_HOST" envDefault:"127.0.0.1"`
	SMTPPort     int    `env:"SMTP_PORT" envDefault:"1025"`
	SMTPUser     string `env:"SMTP_USERNAME"`
	SMTPPassword string `env:"SMTP_PASSWORD"`
	SMTPPassFile string `env:"SMTP_PASSWORD_FILE"`
	SMTPFrom     string `env:"SMTP_FROM" envDefault:"crediti@example.it"`
	SMTPTLS      string `env:"SMTP_TLS" envDefault:"starttls"`

	PECHost     string `env:"PEC_SMTP_HOST"`
	PECPort     int    `env:"PEC_SMTP_PORT" envDefault:"465"`
	PECUser     string `env:"PEC_SMTP_USERNAME"`
	PECPassword string `env:"PEC_SMTP_PASSWORD"`
	PECPassFile string `env:"PEC_SMTP_PASSWORD_FILE"`
	PECFrom     string `env:"PEC_FROM"`
	PECTLS      string `env:"PEC_SMTP_TLS" envDefault:"tls"`

	PlatformURL     string   `env:"DUNNING_PLATFORM_URL"`
	PlatformSecret  string   `env:"DUNNING_PLATFORM_SECRET"`
	PlatformSecFile string   `env:"DUNNING_PLATFORM_SECRET_FILE"`
	AllowedHosts    []string `env:"DUNNING_ALLOWED_HOSTS" envSeparator:","`
	// OutboundAllowNets: private, loopback or link-local networks outbound
	// webhooks may reach anyway (CIDRs or addresses; e.g. 127.0.0.1 for a
	// local platform). Everything else in those ranges is refused.
	OutboundAllowNets []string `env:"DUNNING_OUTBOUND_ALLOW_NETS" envSeparator:","`

	OpsAddr     string `env:"DUNNING_OPS_ADDR" envDefault:"127.0.0.1:8081"`
	OpsToken    string `env:"DUNNING_OPS_TOKEN"`
	OpsMaxConns int    `env:"DUNNING_OPS_MAX_CONNS" envDefault:"256"`
	OpsTokenFil string `env:"DUNNING_OPS_TOKEN_FILE"`
	Pprof       bool   `env:"DUNNING_PPROF"` // /debug/pprof on the ops API, behind its bearer token
	// Concurrency is how many invoices' events are handled at once; one
	// invoice's events stay in order (see lanes).
	Concurrency int `env:"DUNNING_CONCURRENCY" envDefault:"8"`
	// GroupDelay: a client's events must be quiet this long before a stage
	// that became due on an event is sent (see dunning.Engine.GroupDelay).
	GroupDelay time.Duration `env:"DUNNING_GROUP_DELAY" envDefault:"30s"`
	// ContactsTTL is how long a client's contacts read from FIC are used
	// before they are read again; FIC's entities.clients.update webhook
	// drops them sooner.
	ContactsTTL time.Duration `env:"DUNNING_CONTACTS_TTL" envDefault:"24h"`
	// DeliveryConcurrency is how many documents' events go to one HTTP
	// endpoint at once (each document's in order).
	DeliveryConcurrency int `env:"DUNNING_DELIVERY_CONCURRENCY" envDefault:"4"`
	// DeliveryAckWait is how long an event being delivered stays with one
	// replica without news before JetStream gives it to another; the
	// failover time of an endpoint follows from it (about twice this).
	DeliveryAckWait time.Duration `env:"DUNNING_DELIVERY_ACK_WAIT" envDefault:"15s"`
	// ConsoleSession is how long a console sign-in lasts.
	ConsoleSession time.Duration `env:"DUNNING_CONSOLE_SESSION" envDefault:"12h"`
	// EndpointSecretGrace is how long a rotated-out endpoint secret keeps
	// signing.
	EndpointSecretGrace time.Duration `env:"DUNNING_ENDPOINT_SECRET_GRACE" envDefault:"24h"`
	// PlatformLegacySignature also sends the Incasso-Signature headers of
	// earlier versions on hand-offs (see notify.Webhook).
	PlatformLegacySignature bool   `env:"DUNNING_PLATFORM_LEGACY_SIGNATURE" envDefault:"true"`
	OpsURL                  string `env:"DUNNING_OPS_URL" envDefault:"http://127.0.0.1:8081"`
	// StopGrace is how long work in flight (a send and its record) may go
	// on after a stop signal before it is cut.
	StopGrace time.Duration `env:"DUNNING_STOP_GRACE" envDefault:"20s"`

	DemoClock string `env:"INCASSO_DEMO_CLOCK"` // see calendar.DemoClock

	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
	LogLevel  string `env:"LOG_LEVEL" envDefault:"info"`
}

// ParseConfig reads KEY=VALUE pairs.
func ParseConfig(environ []string) (Config, error) {
	var c Config
	if err := envparse.Parse(environ, &c); err != nil {
		return c, err
	}
	return c, errors.Join(envparse.SecretFile(&c.NATSPassword, c.NATSPassFile, "NATS_PASSWORD_FILE"), envparse.SecretFile(&c.FICAccessToken, c.FICAccessFile, "FIC_ACCESS_TOKEN_FILE"),
		envparse.SecretFile(&c.FICClientSecret, c.FICSecretFile, "FIC_CLIENT_SECRET_FILE"),
		envparse.SecretFile(&c.SecretKey, c.SecretKeyFile, "INCASSO_SECRET_KEY_FILE"),
		envparse.SecretFile(&c.SMTPPassword, c.SMTPPassFile, "SMTP_PASSWORD_FILE"),
		envparse.SecretFile(&c.PECPassword, c.PECPassFile, "PEC_SMTP_PASSWORD_FILE"),
		envparse.SecretFile(&c.PlatformSecret, c.PlatformSecFile, "DUNNING_PLATFORM_SECRET_FILE"),
		envparse.SecretFile(&c.OpsToken, c.OpsTokenFil, "DUNNING_OPS_TOKEN_FILE"))
}

// Validate names every bad setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }
	if c.FICAccessToken == "" {
		switch {
		case c.FICClientID == "" || c.FICClientSecret == "":
			bad("FIC_ACCESS_TOKEN, or FIC_CLIENT_ID and FIC_CLIENT_SECRET (OAuth, the poller's connections): required for the freshness check before every send")
		case c.SecretKey == "":
			bad("INCASSO_SECRET_KEY: required in OAuth mode to read the poller's encrypted connections")
		default:
			if _, err := kvstore.ParseSecretKey(c.SecretKey); err != nil {
				bad("INCASSO_SECRET_KEY: %v", err)
			}
		}
	}
	if err := c.FICLimits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.OpsToken != "" && len(c.OpsToken) < 16 {
		bad("DUNNING_OPS_TOKEN: at least 16 characters (or unset it: operators then use their own tokens, `dunning operators add`)")
	}
	if c.SMTPHost == "" || c.SMTPPort <= 0 {
		bad("SMTP_HOST/SMTP_PORT: required")
	}
	for _, t := range []struct{ name, v string }{{"SMTP_TLS", c.SMTPTLS}, {"PEC_SMTP_TLS", c.PECTLS}} {
		if t.v != "none" && t.v != "starttls" && t.v != "tls" {
			bad("%s: %q, want none, starttls or tls", t.name, t.v)
		}
	}
	if c.PlatformURL != "" {
		if u, err := url.Parse(c.PlatformURL); err != nil || u.Host == "" {
			bad("DUNNING_PLATFORM_URL: not a URL")
		} else if !notify.AllowedHost(c.PlatformURL, c.AllowedHosts) {
			bad("DUNNING_PLATFORM_URL: host %q is not in DUNNING_ALLOWED_HOSTS", u.Hostname())
		}
		if u, err := url.Parse(c.PlatformURL); err == nil {
			if err := c.outbound(u).CheckURL(u); err != nil {
				bad("DUNNING_PLATFORM_URL: %v (set DUNNING_OUTBOUND_ALLOW_NETS to reach a private address on purpose)", err)
			}
		}
		if len(c.PlatformSecret) < 16 {
			bad("DUNNING_PLATFORM_SECRET: at least 16 characters (signs hand-offs)")
		}
	}
	if c.GroupDelay < 0 || c.GroupDelay > time.Hour {
		bad("DUNNING_GROUP_DELAY: %v, want 0 to 1h", c.GroupDelay)
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		bad("DUNNING_CONCURRENCY: %d, want 1 to 256", c.Concurrency)
	}
	switch c.LogFormat {
	case "json", "text":
	default:
		bad("LOG_FORMAT: %q, want json or text", c.LogFormat)
	}
	return errors.Join(errs...)
}

func newLogger(c Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

// outbound is the guard of the hand-off to platform URL u: https (or http
// to an allowed private network) on its own port, public addresses plus
// DUNNING_OUTBOUND_ALLOW_NETS.
func (c *Config) outbound(u *url.URL) safehttp.Policy {
	nets, _ := safehttp.ParseNets(c.OutboundAllowNets)
	p := safehttp.Policy{AllowNets: nets, Ports: []int{443}}
	if len(nets) > 0 {
		p.AllowHTTP, p.Ports = true, append(p.Ports, 80) // a local platform (demo, tests) may be plain http
	}
	if n, err := strconv.Atoi(u.Port()); err == nil {
		p.Ports = append(p.Ports, n)
	}
	return p
}

// natsOpen is how this configuration reaches NATS (name: the connection's).
func (c Config) natsOpen(name string) natsrv.OpenConfig {
	return natsrv.OpenConfig{URL: c.NATSURL, Creds: c.NATSCreds, User: c.NATSUser, Password: c.NATSPassword, PasswordFile: c.EmbeddedPasswordFile, Name: name}
}
