package dunningapp

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const endpointsUsage = `dunning endpoints: the platforms that receive Incasso's events over HTTP

  dunning endpoints                           list them
  dunning endpoints add URL [-types invoice.*,dunning.*] [-companies 1,2] [-mode binary] [-description TEXT]
                                              register one; prints its signing secret, once
  dunning endpoints show ID                   one endpoint, and its last replay
  dunning endpoints log ID [-limit 50]        its delivery attempts
  dunning endpoints test ID                   send a signed test event now
  dunning endpoints replay ID -from-seq N | -from-time 2026-12-01T08:00:00Z
                                              deliver again from there (same ids)
  dunning endpoints rotate ID [-grace 24h]    new secret; the old one signs for the grace period
  dunning endpoints enable|disable|delete ID

Needs DUNNING_OPS_URL and an admin's DUNNING_OPS_TOKEN (viewers may list, show and log).
`

// endpointsCmd manages HTTP delivery endpoints through the ops API.
func endpointsCmd(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) error {
	verb := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("dunning endpoints "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, endpointsUsage) }
	types := fs.String("types", "", "comma-separated event types or families (invoice.paid, dunning.*); default all")
	companies := fs.String("companies", "", "comma-separated company ids; default all")
	mode := fs.String("mode", "", "structured (default) or binary")
	desc := fs.String("description", "", "what the endpoint is")
	limit := fs.Int("limit", 50, "log: how many attempts")
	fromSeq := fs.Uint64("from-seq", 0, "replay: first stream sequence")
	fromTime := fs.String("from-time", "", "replay: first time (RFC 3339)")
	grace := fs.String("grace", "", "rotate: how long the old secret keeps signing (default 24h)")
	operator := fs.String("operator", "", "who is acting (with the shared token)")
	var pos []string
	for rest := args; len(rest) > 0; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, rest = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if verb == "help" {
		fmt.Fprint(stdout, endpointsUsage)
		return nil
	}
	if cfg.OpsToken == "" {
		return fmt.Errorf("DUNNING_OPS_TOKEN is required")
	}
	id := func() (string, error) {
		if len(pos) != 1 {
			return "", fmt.Errorf("endpoints %s: want ID", verb)
		}
		return pos[0], nil
	}
	call := func(method, path string, body any) (map[string]any, error) {
		return opsCall(ctx, cfg, method, path, body)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	switch verb {
	case "list":
		out, err := call("GET", "/v1/endpoints", nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "ID\tURL\tTYPES\tCOMPANIES\tMODE\tSTATE")
		for _, e := range out["endpoints"].([]any) {
			m := e.(map[string]any)
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\n", m["id"], m["url"], list(m["types"], "all"), list(m["companies"], "all"), m["mode"], endpointState(m))
		}
	case "add":
		if len(pos) != 1 {
			return fmt.Errorf("endpoints add: want URL")
		}
		body := map[string]any{"url": pos[0], "operator": *operator}
		if *types != "" {
			body["types"] = strings.Split(*types, ",")
		}
		if *companies != "" {
			var ids []int64
			for _, c := range strings.Split(*companies, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
				if err != nil {
					return fmt.Errorf("-companies: %q is not a company id", c)
				}
				ids = append(ids, n)
			}
			body["companies"] = ids
		}
		if *mode != "" {
			body["mode"] = *mode
		}
		if *desc != "" {
			body["description"] = *desc
		}
		out, err := call("POST", "/v1/endpoints", body)
		if err != nil {
			return err
		}
		e := out["endpoint"].(map[string]any)
		fmt.Fprintf(tw, "endpoint\t%v\nurl\t%v\ntypes\t%v\ncompanies\t%v\nmode\t%v\nsecret\t%v\n", e["id"], e["url"], list(e["types"], "all"), list(e["companies"], "all"), e["mode"], out["secret"])
		fmt.Fprintln(tw, "\nKeep the secret now: it is not shown again. The platform verifies each request's webhook-signature with it (docs/webhooks.md).")
	case "show":
		i, err := id()
		if err != nil {
			return err
		}
		out, err := call("GET", "/v1/endpoints/"+i, nil)
		if err != nil {
			return err
		}
		e := out["endpoint"].(map[string]any)
		fmt.Fprintf(tw, "endpoint\t%v\nurl\t%v\ndescription\t%v\ntypes\t%v\ncompanies\t%v\nmode\t%v\nstate\t%v\ncreated\t%v by %v\nsecrets\t%d\n",
			e["id"], e["url"], str(e["description"]), list(e["types"], "all"), list(e["companies"], "all"), e["mode"], endpointState(e), romeTime(e["created_at"]), str(e["created_by"]), len(asList(e["secrets"])))
		if r, ok := out["replay"].(map[string]any); ok {
			fmt.Fprintf(tw, "last replay\tfrom %v to %v, at %v, %v delivered, done %v %v\n", num(r["from_seq"]), num(r["to_seq"]), num(r["at_seq"]), num(r["delivered"]), r["done"], str(r["error"]))
		}
	case "log":
		i, err := id()
		if err != nil {
			return err
		}
		out, err := call("GET", fmt.Sprintf("/v1/endpoints/%s/deliveries?limit=%d", i, *limit), nil)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "WHEN (Europe/Rome)\tEVENT\tTYPE\tATTEMPT\tSTATUS\tLATENCY\tOUTCOME\tERROR")
		for _, a := range out["deliveries"].([]any) {
			m := a.(map[string]any)
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%.1f ms\t%v\t%v\n", romeTime(m["at"]), m["event_id"], m["type"], num(m["attempt"]), num(m["status"]), m["latency_ms"], m["outcome"], clean(str(m["error"]), 120))
		}
	case "test":
		i, err := id()
		if err != nil {
			return err
		}
		out, err := call("POST", "/v1/endpoints/"+i+"/test", nil)
		if err != nil {
			return err
		}
		a := out["attempt"].(map[string]any)
		if out["delivered"] == true {
			fmt.Fprintf(tw, "test event %v delivered: HTTP %v in %.1f ms\n", a["event_id"], num(a["status"]), a["latency_ms"])
		} else {
			return fmt.Errorf("test event %v not accepted: %v", a["event_id"], out["error"])
		}
	case "replay":
		i, err := id()
		if err != nil {
			return err
		}
		if *fromSeq == 0 && *fromTime == "" {
			return fmt.Errorf("endpoints replay: give -from-seq or -from-time")
		}
		out, err := call("POST", "/v1/endpoints/"+i+"/replay", map[string]any{"from_seq": *fromSeq, "from_time": *fromTime, "operator": *operator})
		if err != nil {
			return err
		}
		r := out["replay"].(map[string]any)
		fmt.Fprintf(tw, "replay of %s started: up to stream sequence %v; `dunning endpoints show %s` follows it\n", i, num(r["to_seq"]), i)
	case "rotate":
		i, err := id()
		if err != nil {
			return err
		}
		out, err := call("POST", "/v1/endpoints/"+i+"/rotate", map[string]any{"grace": *grace, "operator": *operator})
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "new secret\t%v\n%v\n", out["secret"], out["note"])
	case "enable", "disable":
		i, err := id()
		if err != nil {
			return err
		}
		out, err := call("PATCH", "/v1/endpoints/"+i, map[string]any{"enabled": verb == "enable", "operator": *operator})
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "endpoint %v: %v\n", i, endpointState(out["endpoint"].(map[string]any)))
	case "delete":
		i, err := id()
		if err != nil {
			return err
		}
		if _, err := call("DELETE", "/v1/endpoints/"+i+"?operator="+*operator, nil); err != nil {
			return err
		}
		fmt.Fprintf(tw, "endpoint %v deleted (and its consumer)\n", i)
	default:
		fmt.Fprint(stderr, endpointsUsage)
		return fmt.Errorf("endpoints: unknown verb %q", verb)
	}
	return nil
}

func endpointState(m map[string]any) string {
	if m["disabled"] == true {
		return "disabled: " + str(m["disabled_reason"])
	}
	if f := str(m["failing_since"]); f != "" {
		return "failing since " + romeTime(f)
	}
	return "enabled"
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func list(v any, empty string) string {
	l := asList(v)
	if len(l) == 0 {
		return empty
	}
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = num(x)
	}
	return strings.Join(parts, ",")
}

// romeTime shows an RFC 3339 time in Europe/Rome, to the second.
func romeTime(v any) string {
	t, err := time.Parse(time.RFC3339Nano, str(v))
	if err != nil {
		return str(v)
	}
	return t.In(rome).Format("02/01/2006 15:04:05")
}
