package envparse_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/incasso-io/incasso/internal/envparse"
)

type cfg struct {
	Port   int    `env:"APP_PORT" envDefault:"80"`
	Secret string `env:"APP_SECRET"`
	File   string `env:"APP_SECRET_FILE"`
}

func TestParse(t *testing.T) {
	var c cfg
	if err := envparse.Parse([]string{"APP_PORT=x9"}, &c); err == nil || !strings.Contains(err.Error(), "APP_PORT") || strings.Contains(err.Error(), "x9") {
		t.Errorf("bad number: %v", err)
	}
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = cfg{}
	if err := envparse.Parse([]string{"APP_SECRET_FILE=" + p}, &c); err != nil || c.Port != 80 {
		t.Fatalf("%+v %v", c, err)
	}
	if err := envparse.SecretFile(&c.Secret, c.File, "APP_SECRET_FILE"); err != nil || c.Secret != "s3cret" {
		t.Errorf("secret file: %q %v", c.Secret, err)
	}
	var d cfg
	if err := envparse.SecretFile(&d.Secret, "/does/not/exist", "APP_SECRET_FILE"); err == nil || !strings.Contains(err.Error(), "APP_SECRET_FILE") {
		t.Errorf("missing file: %v", err)
	}
}
