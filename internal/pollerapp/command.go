package pollerapp

import (
	"context"
	"flag"
	"fmt"
	"github.com/incasso-io/incasso/internal/calendar"
	"io"
	"log/slog"
	"strings"
)

// Command runs the poller command line: args without the program name.
func Command(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	cfg, err := ParseConfig(environ)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("poller "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP listen address for /webhooks/fic, /metrics, /healthz, /readyz (POLLER_HTTP_ADDR)")
	fs.StringVar(&cfg.NATSURL, "nats", cfg.NATSURL, "NATS URL; empty starts the embedded server (NATS_URL)")
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory of the embedded NATS server (INCASSO_DATA_DIR)")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "json or text (LOG_FORMAT)")
	conn := fs.String("connection", "", "connect: name to store the connection under (default: the first company id)")
	company := fs.Int64("company", 0, "deletions confirm: the company whose held deletions to confirm")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	switch cmd {
	case "rotate-key":
		return rotateKey(ctx, cfg, environ, stdout)
	case "deletions":
		action := ""
		if fs.NArg() > 0 {
			action = fs.Arg(0)
			if err := fs.Parse(fs.Args()[1:]); err != nil {
				return err
			}
		}
		return deletions(ctx, cfg, action, *company, stdout)
	case "healthcheck":
		return healthcheck("http://" + cfg.HTTPAddr + "/readyz")
	case "doctor":
		return doctor(ctx, cfg, stdout)
	case "run":
		if err := cfg.Validate(false); err != nil {
			return fmt.Errorf("invalid configuration:\n%w", err)
		}
		m := &Main{Config: cfg, Log: log, Out: stdout, Now: calendar.DemoClock(cfg.DemoClock)}
		return m.Run(ctx)
	case "connect":
		if err := cfg.Validate(true); err != nil {
			return fmt.Errorf("invalid configuration:\n%w", err)
		}
		return connect(ctx, cfg, *conn, log, stdout, nil)
	default:
		return fmt.Errorf("unknown command %q (want run, connect, doctor, rotate-key, deletions or healthcheck)", cmd)
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
