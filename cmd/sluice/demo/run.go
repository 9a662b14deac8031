package demo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters/agent"
	"github.com/sluice-gov/sluice/broker"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/crypto/tlsutil"
)

// RunOptions configures a running demo.
type RunOptions struct {
	Addr   string // broker address; port 0 picks a free port
	Dir    string
	Scale  int
	Now    time.Time
	Logger *slog.Logger
	// Store overrides the broker's store (default broker.db in Dir), e.g. a
	// postgres:// URL.
	Store string
}

// Running is a demo world served by four agents and a broker on loopback.
type Running struct {
	World        *World
	BrokerAddr   string
	BrokerCert   string // the broker's certificate, for clients to pin
	BrokerConfig string
	UsersFile    string
	AgentAddrs   map[string]string
	AdminAddr    string // the admin API (HTTPS)
	// AgentOpsAddrs are the agents' metrics and health listeners (plain
	// HTTP: /metrics, /healthz, /readyz), by department.
	AgentOpsAddrs map[string]string

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	agents  map[string]context.CancelFunc
	starts  map[string]func(net.Listener) error // starts a department's agent on a listener
	closeFn func() error
	current map[string]*agent.Server // the agent serving each department (ops.go)
}

// Departments of the demo world, in start order.
var Departments = []string{"civil", "health", "market", "police"}

// Start generates the demo world in opt.Dir and serves it: each agent and
// the broker is a real Flight server with TLS on its own loopback socket.
func Start(ctx context.Context, opt RunOptions) (*Running, error) {
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:47470"
	}
	if opt.Dir == "" {
		opt.Dir = ".sluice-demo"
	}
	if opt.Scale <= 0 {
		opt.Scale = 1
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(opt.Addr)
	if err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "--addr %q is not host:port: %v", opt.Addr, err)
	}
	brokerLis, err := net.Listen("tcp", opt.Addr)
	if err != nil {
		return nil, sluice.Errorf(sluice.EUnavailable, "cannot listen on %s: %v (is another demo running? pick another --addr)", opt.Addr, err)
	}
	listeners := map[string]net.Listener{}
	closeListeners := func() {
		brokerLis.Close()
		for _, l := range listeners {
			l.Close()
		}
	}
	adminLis, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		brokerLis.Close()
		return nil, sluice.Errorf(sluice.EUnavailable, "cannot listen for the admin API on %s: %v", host, err)
	}
	listeners["admin"] = adminLis
	addrs := map[string]string{}
	for _, d := range Departments {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			closeListeners()
			return nil, sluice.Errorf(sluice.EUnavailable, "cannot listen for the %s agent on %s: %v", d, host, err)
		}
		listeners[d] = l
		addrs[d] = l.Addr().String()
	}
	world, err := Generate(ctx, Options{Dir: opt.Dir, Scale: opt.Scale, Now: opt.Now, AgentAddrs: addrs})
	if err != nil {
		closeListeners()
		return nil, err
	}
	r := &Running{World: world, BrokerAddr: brokerLis.Addr().String(), AdminAddr: adminLis.Addr().String(), AgentAddrs: addrs,
		agents: map[string]context.CancelFunc{}, starts: map[string]func(net.Listener) error{}}
	opsListeners, err := r.openOpsListeners(host)
	if err != nil {
		closeListeners()
		return nil, sluice.Errorf(sluice.EUnavailable, "cannot listen for the agents' metrics on %s: %v", host, err)
	}
	for d, l := range opsListeners {
		listeners["ops-"+d] = l
	}
	if err := r.writeConfigs(opt, host); err != nil {
		closeListeners()
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	for _, d := range Departments {
		dept, err := sluice.LoadDepartment(world.DepartmentFiles[d])
		if err != nil {
			cancel()
			closeListeners()
			return nil, err
		}
		aopts := []agent.Option{agent.WithLogger(opt.Logger.With("agent", d))}
		if dept.Agent.Registry != "" {
			aopts = append(aopts, agent.WithRegistry(dept.Agent.Registry))
		}
		start := func(lis net.Listener) error {
			srv, err := agent.New(rctx, dept, aopts...)
			if err != nil {
				return err
			}
			actx, acancel := context.WithCancel(rctx)
			r.mu.Lock()
			r.agents[d] = acancel
			r.mu.Unlock()
			r.setAgent(d, srv)
			r.serve(func() error { defer srv.Close(); return srv.Serve(actx, lis) })
			return nil
		}
		r.starts[d] = start
		r.serve(func() error { return r.serveOps(rctx, d, opsListeners[d]) })
		if err := start(listeners[d]); err != nil {
			cancel()
			closeListeners()
			return nil, err
		}
	}
	cfg, err := broker.LoadConfig(r.BrokerConfig)
	if err != nil {
		r.Stop()
		brokerLis.Close()
		return nil, err
	}
	srv, closeFn, err := broker.Open(rctx, cfg, broker.WithLogger(opt.Logger.With("component", "broker")))
	if err != nil {
		r.Stop()
		brokerLis.Close()
		return nil, err
	}
	r.closeFn = closeFn
	r.serve(func() error { return srv.Serve(rctx, brokerLis) })
	r.serve(func() error { return srv.ServeAdmin(rctx, adminLis) })
	return r, nil
}

func (r *Running) serve(f func() error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := f(); err != nil {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		}
	}()
}

// KillAgent stops one department's agent at once (for failure tests).
func (r *Running) KillAgent(dept string) {
	r.mu.Lock()
	c, ok := r.agents[dept]
	r.mu.Unlock()
	if ok {
		c()
	}
}

// RestartAgent starts a department's agent again on its address after
// KillAgent, waiting up to 10 s for the old one to let the port go.
func (r *Running) RestartAgent(dept string) error {
	start, ok := r.starts[dept]
	if !ok {
		return fmt.Errorf("demo: no agent of department %q", dept)
	}
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if lis, err = net.Listen("tcp", r.AgentAddrs[dept]); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("demo: restart the %s agent: %w", dept, err)
	}
	if err := start(lis); err != nil {
		lis.Close()
		return err
	}
	return nil
}

// Stop shuts the broker and agents down and waits for them.
func (r *Running) Stop() error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	var errs []error
	if r.closeFn != nil {
		errs = append(errs, r.closeFn())
	}
	r.mu.Lock()
	errs = append(errs, r.errs...)
	r.mu.Unlock()
	return errors.Join(errs...)
}

// writeConfigs writes certificates, the users files and the broker
// configuration, and pins certificates in each department file.
func (r *Running) writeConfigs(opt RunOptions, host string) error {
	dir := opt.Dir
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		return sluice.Errorf(sluice.EInvalid, "create %s: %v", tlsDir, err)
	}
	hosts := []string{host, "127.0.0.1", "localhost"}
	r.BrokerCert = filepath.Join(tlsDir, "broker.crt")
	if err := tlsutil.WriteSelfSigned(r.BrokerCert, filepath.Join(tlsDir, "broker.key"), "sluice-broker", hosts); err != nil {
		return err
	}
	brokerPin, err := tlsutil.FingerprintFile(r.BrokerCert)
	if err != nil {
		return err
	}
	var deptFiles []string
	for _, d := range Departments {
		crt, key := filepath.Join(tlsDir, d+".crt"), filepath.Join(tlsDir, d+".key")
		if err := tlsutil.WriteSelfSigned(crt, key, "sluice-agent-"+d, hosts); err != nil {
			return err
		}
		pin, err := tlsutil.FingerprintFile(crt)
		if err != nil {
			return err
		}
		path := r.World.DepartmentFiles[d]
		dept, err := sluice.LoadDepartment(path)
		if err != nil {
			return err
		}
		// LoadDepartment resolved paths; write them back relative to the file.
		deptDir := filepath.Dir(path)
		for i := range dept.Sources {
			if rel, err := filepath.Rel(deptDir, dept.Sources[i].DSN); err == nil {
				dept.Sources[i].DSN = rel
			}
		}
		// Defaults (beside the file) for the agent's own log and key.
		dept.Agent.AuditLog, dept.Agent.SigningKey, dept.Agent.UnitKey = "", "", ""
		// Demo agents accept datasets their admin registers on the platform.
		dept.Agent.Registry = d + "-agent-registry.json"
		dept.Agent.Address = r.AgentAddrs[d]
		dept.Agent.MetricsListen = r.AgentOpsAddrs[d]
		dept.Agent.TLSCert = filepath.Join("..", "tls", d+".crt")
		dept.Agent.TLSKey = filepath.Join("..", "tls", d+".key")
		dept.Agent.Fingerprint = pin
		dept.Agent.BrokerFingerprints = []string{brokerPin}
		if err := WriteDepartmentFile(path, dept); err != nil {
			return err
		}
		rel, err := relativeTo(dir, path)
		if err != nil {
			return err
		}
		deptFiles = append(deptFiles, rel)
	}
	// Keep tokens across restarts so a shell that exported one keeps working.
	r.UsersFile = filepath.Join(dir, "users.json")
	users := r.World.Users
	if old, err := readUsers(r.UsersFile); err == nil {
		for i := range users {
			for _, o := range old {
				if o.Name == users[i].Name && o.Token != "" {
					users[i].Token = o.Token
				}
			}
		}
	}
	if err := writeJSON(r.UsersFile, users, 0o600); err != nil {
		return err
	}
	hashed := make([]state.UserRecord, len(users))
	for i, u := range users {
		hashed[i] = state.UserRecord{Name: u.Name, Role: u.Role, Department: u.Department, TokenSHA256: state.HashToken(u.Token)}
	}
	if err := writeJSON(filepath.Join(dir, "broker-users.json"), hashed, 0o600); err != nil {
		return err
	}
	cfg := broker.Config{
		Listen:      r.BrokerAddr,
		AdminListen: r.AdminAddr,
		TLSCert:     filepath.Join("tls", "broker.crt"),
		TLSKey:      filepath.Join("tls", "broker.key"),
		Store:       cmp.Or(opt.Store, "broker.db"),
		Departments: deptFiles,
		Users:       "broker-users.json",
		Purposes:    "purposes.yaml",
		Grants:      "grants.yaml",
		SigningKey:  filepath.Join("keys", "broker-audit.key"),
		Retention:   0,
		ArchiveDir:  "",
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return sluice.Errorf(sluice.EInvalid, "create %s: %v", filepath.Join(dir, "keys"), err)
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "encode broker config: %v", err)
	}
	r.BrokerConfig = filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(r.BrokerConfig, raw, 0o644); err != nil {
		return sluice.Errorf(sluice.EInvalid, "write %s: %v", r.BrokerConfig, err)
	}
	return nil
}

func readUsers(path string) ([]User, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var us []User
	if err := json.Unmarshal(raw, &us); err != nil {
		return nil, err
	}
	return us, nil
}

func writeJSON(path string, v any, mode os.FileMode) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return sluice.Errorf(sluice.EInternal, "encode %s: %v", path, err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), mode); err != nil {
		return sluice.Errorf(sluice.EInvalid, "write %s: %v", path, err)
	}
	return os.Chmod(path, mode)
}

// Token returns a demo user's token.
func (r *Running) Token(name string) (string, error) {
	us, err := readUsers(r.UsersFile)
	if err != nil {
		return "", err
	}
	for _, u := range us {
		if u.Name == name {
			return u.Token, nil
		}
	}
	return "", fmt.Errorf("no demo user %q", name)
}

// relativeTo expresses path relative to dir, whether either is absolute.
func relativeTo(dir, path string) (string, error) {
	ad, err := filepath.Abs(dir)
	if err != nil {
		return "", sluice.Errorf(sluice.EInvalid, "resolve %s: %v", dir, err)
	}
	ap, err := filepath.Abs(path)
	if err != nil {
		return "", sluice.Errorf(sluice.EInvalid, "resolve %s: %v", path, err)
	}
	rel, err := filepath.Rel(ad, ap)
	if err != nil {
		return "", sluice.Errorf(sluice.EInvalid, "%s is not inside %s: %v", path, dir, err)
	}
	return rel, nil
}
