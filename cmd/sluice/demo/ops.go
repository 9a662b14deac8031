package demo

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/sluice-gov/sluice/adapters/agent"
)

// openOpsListeners opens each demo agent's metrics and health listener
// (agent.metrics_listen) on a free port of host.
func (r *Running) openOpsListeners(host string) (map[string]net.Listener, error) {
	out := map[string]net.Listener{}
	r.AgentOpsAddrs = map[string]string{}
	for _, d := range Departments {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out[d] = l
		r.AgentOpsAddrs[d] = l.Addr().String()
	}
	return out, nil
}

// setAgent records the agent now serving dept, whose /metrics, /healthz
// and /readyz the department's ops listener answers.
func (r *Running) setAgent(dept string, srv *agent.Server) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		r.current = map[string]*agent.Server{}
	}
	r.current[dept] = srv
}

// serveOps serves a department's ops listener for the demo's lifetime: a
// restarted agent keeps the address, and an agent that was killed answers
// /readyz with its sources closed (503).
func (r *Running) serveOps(ctx context.Context, dept string, lis net.Listener) error {
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		srv := r.current[dept]
		r.mu.Unlock()
		if srv == nil {
			http.Error(w, "the agent is not running", http.StatusServiceUnavailable)
			return
		}
		srv.OpsHandler().ServeHTTP(w, req)
	})
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return nil
}
