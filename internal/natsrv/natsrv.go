// Package natsrv starts an embedded nats-server with JetStream: the
// zero-config default of the Incasso binaries (NATS_URL unset) and the server
// behind the tests. It is the real NATS server, in process.
package natsrv

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config of the embedded server.
type Config struct {
	Host       string // default 127.0.0.1
	Port       int    // default 4222; -1 picks a free port
	StoreDir   string // JetStream file store; required
	ServerName string // default "incasso-embedded"
	// MaxMemory/MaxStore bound JetStream (0: server defaults).
	MaxMemory int64
	MaxStore  int64
	// Routes and ClusterPort form an in-process cluster (tests).
	ClusterName string
	ClusterHost string
	ClusterPort int
	Routes      []string
	// NoAdvertise keeps the cluster's client URLs out of INFO (clients use
	// only the URLs they were given: proxies, NAT).
	NoAdvertise bool
	Logging     bool
	// Users may connect (none: anyone may; the embedded default of the
	// binaries always has one, see Open).
	Users []User
}

// User is a client of the embedded server.
type User struct{ Name, Password string }

// Start runs the server and waits until it accepts connections and
// JetStream is ready.
func Start(c Config) (*server.Server, error) {
	if c.StoreDir == "" {
		return nil, errors.New("natsrv: StoreDir is required")
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.Port == 0 {
		c.Port = 4222
	}
	if c.ServerName == "" {
		c.ServerName = "incasso-embedded"
	}
	opts := &server.Options{
		ServerName:         c.ServerName,
		Host:               c.Host,
		Port:               c.Port,
		JetStream:          true,
		StoreDir:           c.StoreDir,
		JetStreamMaxMemory: c.MaxMemory,
		JetStreamMaxStore:  c.MaxStore,
		NoSigs:             true,
		NoLog:              !c.Logging,
	}
	for _, u := range c.Users {
		opts.Users = append(opts.Users, &server.User{Username: u.Name, Password: u.Password})
	}
	if c.ClusterName != "" {
		opts.Cluster = server.ClusterOpts{Name: c.ClusterName, Host: c.ClusterHost, Port: c.ClusterPort, NoAdvertise: c.NoAdvertise}
		for _, r := range c.Routes {
			u := server.RoutesFromStr(r)
			if len(u) == 0 {
				return nil, fmt.Errorf("natsrv: invalid route %q", r)
			}
			opts.Routes = append(opts.Routes, u...)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsrv: %w", err)
	}
	if c.Logging {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("natsrv: server on %s:%d not ready after 15s (port in use?)", c.Host, c.Port)
	}
	return s, nil
}
