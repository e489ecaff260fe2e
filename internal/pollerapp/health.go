package pollerapp

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// healthcheck is the container health probe (FROM scratch images have no
// curl): GET url, exit status by the answer. A 0.0.0.0 listen address is
// probed on loopback.
func healthcheck(url string) error {
	url = strings.Replace(url, "//0.0.0.0:", "//127.0.0.1:", 1)
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
