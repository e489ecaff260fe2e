package dunningapp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/incasso-io/incasso/internal/calendar"
)

// Command runs the dunning command line: args without the program name.
func Command(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cmd, named := "run", false
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args, named = args[0], args[1:], true
	}
	// Help needs no configuration.
	if cmd == "help" {
		name := ""
		if len(args) > 0 {
			name = args[0]
		}
		return help(stdout, name)
	}
	if wantsHelp(args) && cmd != "endpoints" && cmd != "operators" {
		if !named {
			cmd = "" // dunning -h: every command
		}
		return help(stdout, cmd)
	}
	cfg, err := ParseConfig(environ)
	if err != nil {
		return err
	}
	if cmd == "healthcheck" {
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Get("http://" + strings.Replace(cfg.OpsAddr, "0.0.0.0:", "127.0.0.1:", 1) + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: HTTP %d", resp.StatusCode)
		}
		return nil
	}
	if cmd == "operators" {
		return operatorsCmd(ctx, cfg, args, stdout, stderr)
	}
	if cmd == "endpoints" {
		return endpointsCmd(ctx, cfg, args, stdout, stderr)
	}
	if cmd == "render" {
		return render(cfg, args, stdout, stderr)
	}
	if cmd == "run" {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("invalid configuration:\n%w", err)
		}
		m := &Main{Config: cfg, Log: newLogger(cfg, stderr), Out: stdout, Now: calendar.DemoClock(cfg.DemoClock)}
		return m.Run(ctx)
	}
	return cli(ctx, cmd, args, cfg, stdout, stderr)
}
