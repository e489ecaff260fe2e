package dunningapp

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/incasso-io/incasso/internal/kvstore"
	"github.com/incasso-io/incasso/internal/natsrv"
)

// operatorsCmd manages the ops API's operators, on NATS directly (it is
// run where the service runs; the first admin cannot be created through
// an API that needs one):
//
//	dunning operators add -name "Maria Rossi" -role admin
//	dunning operators list
//	dunning operators revoke -name "Maria Rossi"
func operatorsCmd(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("operators: want add, list or revoke")
	}
	action, args := args[0], args[1:]
	fs := flag.NewFlagSet("dunning operators "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the operator's name (as the audit trail shows it)")
	role := fs.String("role", kvstore.RoleOperator, "viewer, operator or admin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nc, err := natsrv.Open(ctx, cfg.natsOpen("incasso-dunning-operators"))
	if err != nil {
		return err
	}
	defer nc.Close()
	ops, err := kvstore.NewOperators(ctx, nc.JS, kvstore.BucketConfig{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	switch action {
	case "add":
		by, _ := os.Hostname()
		tok, op, err := ops.Add(ctx, *name, *role, "cli@"+by)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "operator %q (%s) added. Their token, shown this once (give it to them; it is stored only as a hash):\n\n  DUNNING_OPS_TOKEN=%s\n", op.Name, op.Role, tok)
	case "list":
		all, err := ops.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tSTATE")
		for _, op := range all {
			state := "active"
			if !op.Revoked.IsZero() {
				state = "revoked " + op.Revoked.In(rome).Format("02/01/2006 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", clean(op.Name, 64), op.Role, op.Created.In(rome).Format("02/01/2006 15:04"), state)
		}
		return tw.Flush()
	case "revoke":
		if err := ops.Revoke(ctx, *name); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "operator %q revoked: their token no longer works\n", *name)
	default:
		return fmt.Errorf("operators: %q: want add, list or revoke", action)
	}
	return nil
}
