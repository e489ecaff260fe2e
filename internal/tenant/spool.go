package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/oauth2"
)

// Sealer encrypts spooled tokens (kvstore.Tokens).
type Sealer interface {
	Seal(name string, plain []byte) ([]byte, error)
	Unseal(name string, sealed []byte) ([]byte, error)
}

// DirSpool keeps spooled tokens in a directory of the data volume, one
// sealed file per connection (mode 0600, written to a temporary file and
// renamed, so a crash leaves the old file or the new one).
type DirSpool struct {
	Dir    string
	Sealer Sealer
}

var _ Spool = (*DirSpool)(nil)

func (d *DirSpool) path(key string) string { return filepath.Join(d.Dir, key+".token") }

// Put implements Spool.
func (d *DirSpool) Put(key string, tok *oauth2.Token) error {
	plain, err := json.Marshal(tok)
	if err != nil {
		return err
	}
	sealed, err := d.Sealer.Seal(key, plain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("tenant: spool: %w", err)
	}
	f, err := os.CreateTemp(d.Dir, key+".*.tmp")
	if err != nil {
		return fmt.Errorf("tenant: spool: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(sealed); err != nil {
		f.Close()
		return fmt.Errorf("tenant: spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tenant: spool: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tenant: spool: %w", err)
	}
	if err := os.Rename(f.Name(), d.path(key)); err != nil {
		return fmt.Errorf("tenant: spool: %w", err)
	}
	return nil
}

// Get implements Spool.
func (d *DirSpool) Get(key string) (*oauth2.Token, error) {
	b, err := os.ReadFile(d.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tenant: spool: %w", err)
	}
	plain, err := d.Sealer.Unseal(key, b)
	if err != nil {
		return nil, fmt.Errorf("tenant: spool of %q: %w", key, err)
	}
	var tok oauth2.Token
	if err := json.Unmarshal(plain, &tok); err != nil {
		return nil, fmt.Errorf("tenant: spool of %q is corrupt", key)
	}
	return &tok, nil
}

// Remove implements Spool.
func (d *DirSpool) Remove(key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("tenant: spool: %w", err)
	}
	return nil
}
