// Package envparse reads a process's configuration struct from KEY=VALUE
// pairs with caarlos0/env, the same way for every Incasso binary: errors name
// the environment variable (never the Go field, never the value), and
// secrets may come from files (NAME_FILE holds the path).
package envparse

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
)

// Parse fills cfg (a pointer to a struct with `env` tags) from environ.
func Parse(environ []string, cfg any) error {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	err := env.ParseWithOptions(cfg, env.Options{Environment: m})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config: %w", err)
	}
	t := reflect.TypeOf(cfg).Elem()
	var out []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				out = append(out, fmt.Errorf("%s: not a valid %s", name, pe.Type))
				continue
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// SecretFile sets *dst from the file at path when *dst is empty and a path
// is given; name is the variable reported on error.
func SecretFile(dst *string, path, name string) error {
	if path == "" || *dst != "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*dst = strings.TrimSpace(string(b))
	return nil
}
