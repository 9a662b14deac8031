package agent

// The agent's side of a private join (ECDH PSI, see crypto/psi).
//
// Protocol. The broker orchestrates; the two agents never talk to each
// other; the broker sees only blinded keys.
//
//  1. psi-blind (DoExchange). The broker opens DoExchange and sends one
//     FlightData holding a command descriptor with the JSON
//     {"op": "psi-blind", "fragment": {...}, "key_column": "id_card",
//     "key_domain": "person"}, then closes its side. The fragment's first
//     select item must be the bare key column. The agent enforces the
//     fragment as it does any other (with the PSI rule below), draws a fresh
//     secret for this session, and answers with one FlightData whose
//     app_metadata is {"session": id, "group": "curve25519", "key_domain":
//     ..., "key_column": ...}, followed by an Arrow stream: column 0 is the
//     blinded key (binary, 32 bytes; null where the key is NULL or empty after
//     normalisation), the other columns are the fragment's other select items
//     with the agent's masks applied. The session exists only once the whole
//     stream was sent; a failed stream leaves none.
//  2. psi-reblind (DoExchange). The broker sends a command descriptor
//     {"op": "psi-reblind", "session": id}, then an Arrow stream of record
//     batches with one binary column (the other party's blinded keys, nulls
//     allowed), then closes its side. The agent answers with one record per
//     batch received, each with one binary column "point" of the same length:
//     its secret applied to each point, in order (null stays null). A session
//     is reblinded at most once: it is the only use of the agent's secret as
//     an oracle, and a second call, even after a failure, is refused.
//  3. psi-close (DoAction, body {"session": id}) destroys the secret. Closing
//     an unknown or expired session is not an error. Sessions also expire
//     after an idle TTL (default 5 minutes) and are bounded in number.
//
// The PSI rule: the key column must be a join_key column of the dataset
// whose key domain equals key_domain, and it may appear in the fragment only
// as that first select item — never in WHERE, GROUP BY, HAVING, ORDER BY,
// inside an expression or as another output — whoever the requester is. The
// rest of the fragment is enforced exactly as Fetch enforces a fragment,
// which means a PSI fragment is row-level: no aggregates, and aggregate or
// hidden columns cannot be payload for a non-owner.
//
// Every psi-blind leaves one "fragment" entry in the agent's audit log, as a
// Fetch does, with Rows, Bytes and Digest over the blinded records sent.
// psi-reblind and psi-close are logged (never their points).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/adapters/tracing"
	"github.com/sluice-gov/sluice/crypto/psi"
	"github.com/sluice-gov/sluice/planner"
)

const (
	actionPSIBlind   = "psi-blind"
	actionPSIReblind = "psi-reblind"
	actionPSIClose   = "psi-close"

	// DefaultPSISessionTTL is how long an idle PSI session keeps its secret.
	DefaultPSISessionTTL = 5 * time.Minute
	// DefaultPSIMaxSessions bounds the sessions an agent holds at once.
	DefaultPSIMaxSessions = 256

	// psiPointsPerBatch is what the client puts in one reblind record:
	// 16384 × 32 bytes plus offsets stays well under maxRecvMsgBytes.
	psiPointsPerBatch = 16384
	// psiKeyField is the name of the blinded key column in both directions.
	psiKeyField = "point"
)

// psiCommand is the descriptor of a PSI DoExchange and the body of psi-close.
type psiCommand struct {
	Op        string            `json:"op,omitempty"`
	Fragment  *planner.Fragment `json:"fragment,omitempty"`
	KeyColumn string            `json:"key_column,omitempty"`
	KeyDomain string            `json:"key_domain,omitempty"`
	Session   string            `json:"session,omitempty"`
}

// psiHeader is the app_metadata of the first message of a psi-blind answer.
type psiHeader struct {
	Session   string `json:"session"`
	Group     string `json:"group"`
	KeyDomain string `json:"key_domain"`
	KeyColumn string `json:"key_column"`
}

func decodePSICommand(raw []byte) (*psiCommand, error) {
	if len(raw) == 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "the PSI command is empty")
	}
	if len(raw) > maxTicketBytes {
		return nil, sluice.Errorf(sluice.EInvalid, "the PSI command is %d bytes; the limit is %d", len(raw), maxTicketBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c psiCommand
	if err := dec.Decode(&c); err != nil {
		return nil, sluice.Errorf(sluice.EInvalid, "the PSI command is not valid JSON of the expected form: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, sluice.Errorf(sluice.EInvalid, "the PSI command has data after the command")
	}
	return &c, nil
}

// psiSession is one (query, agent) secret between psi-blind and psi-close.
type psiSession struct {
	id, queryID, dataset string
	secret               *psi.Secret
	lastUsed             time.Time
	busy                 int  // calls using it now
	reblinded            bool // the one reblind was started
	timer                *time.Timer
}

// psiStore holds a Server's sessions. It lives beside the Server (see
// psiStoreOf) so that the agent's core types stay as they are.
type psiStore struct {
	mu          sync.Mutex
	ttl         time.Duration
	max         int
	sessions    map[string]*psiSession
	now         func() time.Time
	onDestroyed func(id string) // test hook
}

var psiStores sync.Map // *Server → *psiStore

func psiStoreOf(s *Server) *psiStore {
	if v, ok := psiStores.Load(s); ok {
		return v.(*psiStore)
	}
	v, _ := psiStores.LoadOrStore(s, &psiStore{
		ttl: DefaultPSISessionTTL, max: DefaultPSIMaxSessions,
		sessions: map[string]*psiSession{}, now: time.Now,
	})
	return v.(*psiStore)
}

// SetPSISessionLimits sets the idle TTL of PSI sessions and how many the
// agent holds at once (defaults DefaultPSISessionTTL and
// DefaultPSIMaxSessions). Values ≤ 0 keep the current setting. Call it
// before Serve.
func (s *Server) SetPSISessionLimits(ttl time.Duration, maxSessions int) {
	st := psiStoreOf(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	if ttl > 0 {
		st.ttl = ttl
	}
	if maxSessions > 0 {
		st.max = maxSessions
	}
}

// PSISessions is the number of PSI sessions holding a secret.
func (s *Server) PSISessions() int {
	st := psiStoreOf(s)
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.sessions)
}

// ClosePSISessions destroys every PSI secret the agent holds.
func (s *Server) ClosePSISessions() {
	st := psiStoreOf(s)
	st.mu.Lock()
	ids := make([]string, 0, len(st.sessions))
	for id := range st.sessions {
		ids = append(ids, id)
	}
	st.mu.Unlock()
	for _, id := range ids {
		st.close(id)
	}
}

func newSessionID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", &sluice.Error{Code: sluice.EInternal, Message: "the system random number generator failed; no PSI session was opened", Err: err}
	}
	return "psi-" + hex.EncodeToString(b[:]), nil
}

// open registers a new session with a fresh secret, in state busy.
func (st *psiStore) open(queryID, dataset string) (*psiSession, error) {
	secret, err := psi.NewSecret()
	if err != nil {
		return nil, err
	}
	id, err := newSessionID()
	if err != nil {
		secret.Destroy()
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked()
	if len(st.sessions) >= st.max {
		secret.Destroy()
		return nil, sluice.Errorf(sluice.EResource,
			"the agent holds %d open PSI sessions, its limit; close finished ones with psi-close or wait for them to expire (%s idle)", len(st.sessions), st.ttl)
	}
	sess := &psiSession{id: id, queryID: queryID, dataset: dataset, secret: secret, lastUsed: st.now(), busy: 1}
	st.sessions[id] = sess
	sess.timer = time.AfterFunc(st.ttl, func() { st.expire(id) })
	return sess, nil
}

// acquire marks a session busy for a reblind; it fails if the session is
// unknown, expired or already reblinded.
func (st *psiStore) acquireForReblind(id string) (*psiSession, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked()
	sess := st.sessions[id]
	if sess == nil {
		return nil, sluice.Errorf(sluice.ENotFound,
			"PSI session %q is unknown or has expired (sessions are dropped after %s idle); start the private join again", id, st.ttl)
	}
	if sess.reblinded {
		return nil, sluice.Errorf(sluice.EInvalid,
			"PSI session %q was already reblinded; a session answers one reblind only, start the private join again", id)
	}
	if sess.busy > 0 {
		return nil, sluice.Errorf(sluice.EInvalid, "PSI session %q is still blinding; reblind after its stream has ended", id)
	}
	sess.reblinded = true
	sess.busy++
	sess.lastUsed = st.now()
	return sess, nil
}

func (st *psiStore) release(sess *psiSession) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sess.busy--
	sess.lastUsed = st.now()
}

// close destroys a session's secret; unknown ids are ignored.
func (st *psiStore) close(id string) bool {
	st.mu.Lock()
	sess := st.sessions[id]
	if sess != nil {
		delete(st.sessions, id)
		sess.timer.Stop()
	}
	hook := st.onDestroyed
	st.mu.Unlock()
	if sess == nil {
		return false
	}
	// Destroy waits for a batch still using the secret.
	sess.secret.Destroy()
	if hook != nil {
		hook(id)
	}
	return true
}

// expire runs from the session's timer: it drops the session when it has
// been idle for the TTL, and looks again later otherwise.
func (st *psiStore) expire(id string) {
	st.mu.Lock()
	sess := st.sessions[id]
	if sess == nil {
		st.mu.Unlock()
		return
	}
	if idle := st.now().Sub(sess.lastUsed); sess.busy > 0 || idle < st.ttl {
		wait := st.ttl - idle
		if sess.busy > 0 || wait <= 0 {
			wait = st.ttl
		}
		sess.timer.Reset(wait)
		st.mu.Unlock()
		return
	}
	st.mu.Unlock()
	st.close(id)
}

// sweepLocked drops idle expired sessions whose timer has not fired yet.
func (st *psiStore) sweepLocked() {
	now := st.now()
	for id, sess := range st.sessions {
		if sess.busy == 0 && now.Sub(sess.lastUsed) >= st.ttl {
			delete(st.sessions, id)
			sess.timer.Stop()
			go sess.secret.Destroy() // may wait for a batch; not under st.mu
		}
	}
}

// psiPrepare checks a psi-blind request and prepares the fragment as it
// will run: the key column first, as is, then the payload enforced as any
// fragment is.
func (s *Server) psiPrepare(cmd *psiCommand) (*prepared, *sluice.Column, error) {
	f := cmd.Fragment
	if f == nil {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "the psi-blind request holds no fragment")
	}
	if err := psi.CheckDomain(cmd.KeyDomain); err != nil {
		return nil, nil, err
	}
	ds, err := s.dataset(f.Dataset)
	if err != nil {
		return nil, nil, err
	}
	key := ds.Column(cmd.KeyColumn)
	switch {
	case cmd.KeyColumn == "":
		return nil, nil, sluice.Errorf(sluice.EInvalid, "the psi-blind request names no key_column")
	case key == nil:
		return nil, nil, sluice.Errorf(sluice.ENotFound, "dataset %s has no column %q to join on", ds.FullName(), cmd.KeyColumn)
	}
	name := ds.FullName() + "." + key.Name
	if key.Release != sluice.ReleaseJoinKey {
		return nil, nil, deny("psi_key_not_join_key", name,
			"column %s is released as %s, not join_key: only join_key columns take part in a private join (a plain column joins as an ordinary hash join)", name, key.Release)
	}
	if key.KeyDomain != cmd.KeyDomain {
		return nil, nil, deny("psi_key_domain_mismatch", name,
			"column %s is in key domain %q, not %q: a private join pairs join keys of the same domain only", name, key.KeyDomain, cmd.KeyDomain)
	}
	if key.Type != sluice.TypeText && key.Type != sluice.TypeInteger {
		return nil, nil, sluice.Errorf(sluice.ENotSupported, "join key %s is of type %s; private joins take text or integer keys", name, key.Type)
	}
	if len(f.Select) == 0 || f.Select[0].Expr == nil || f.Select[0].Expr.Kind != planner.KindColumn ||
		!strings.EqualFold(f.Select[0].Expr.Column, key.Name) {
		return nil, nil, sluice.Errorf(sluice.EInvalid,
			"the first select item of a psi-blind fragment must be the key column %s itself, with no expression around it", key.Name)
	}
	for k := range f.Masks {
		if strings.EqualFold(k, key.Name) {
			return nil, nil, sluice.Errorf(sluice.EInvalid, "join key %s cannot be masked: masked keys would not match", name)
		}
	}
	if isAggregated(f) {
		// Aggregates would need the key in GROUP BY, which the rule forbids.
		return nil, nil, sluice.Errorf(sluice.EInvalid,
			"a psi-blind fragment returns one row per key; aggregate after the join, in the sandbox")
	}
	// The key may be used nowhere but as the first output.
	rest := *f
	rest.Select = f.Select[1:]
	uses, err := collectUses(&rest, ds)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range uses {
		if u.col == key {
			return nil, nil, deny("join_key_column", name,
				"join key %s may be used in a private join only as the key (the first select item), not in %s", name, u.clause)
		}
	}

	fc := *f
	fc.Masks = make(map[string]sluice.MaskRule, len(f.Masks))
	for k, v := range f.Masks {
		fc.Masks[k] = v
	}
	fc.Select = append([]planner.SelectItem(nil), f.Select...)
	if err := fc.Validate(ds); err != nil {
		return nil, nil, asInvalid(err)
	}
	// Enforce the payload exactly as a Fetch: everything but the key item.
	ec := fc
	ec.Select = fc.Select[1:]
	if err := enforce(&ec, ds, s.dept.ID, s.opts.minGroupSize); err != nil {
		return nil, nil, err
	}
	fc.Masks, fc.MinGroupSize = ec.Masks, ec.MinGroupSize
	if err := fc.Validate(ds); err != nil {
		return nil, nil, asInvalid(err)
	}
	db := s.dbs[ds.Source]
	if db == nil {
		return nil, nil, sluice.Errorf(sluice.EUnavailable, "the source of dataset %s is not open", ds.FullName())
	}
	if fc.MinGroupSize > 0 {
		return nil, nil, sluice.Errorf(sluice.EInvalid, "a psi-blind fragment is bound for the sandbox, which counts its persons; it carries no minimum group size of its own")
	}
	p, err := prepareUnits(&prepared{f: &fc, ds: ds, db: db})
	if err != nil {
		return nil, nil, err
	}
	return p, key, nil
}

// psiSchema is the schema of a psi-blind stream: the blinded key, then the
// payload as a Fetch would type it.
func psiSchema(fields []planner.Field, domain string) *arrow.Schema {
	base := adapters.Schema(fields)
	out := make([]arrow.Field, 0, len(fields))
	out = append(out, arrow.Field{
		Name: base.Field(0).Name, Type: arrow.BinaryTypes.Binary, Nullable: true,
		Metadata: arrow.NewMetadata([]string{"sluice.psi.group", "sluice.psi.key_domain"}, []string{psi.GroupName, domain}),
	})
	out = append(out, base.Fields()[1:]...)
	return arrow.NewSchema(out, nil)
}

// psiBlind runs a psi-blind request: enforcement, a new session, the scan,
// and the blinded stream, recorded in the audit log as a fragment run.
// onStart receives the header and schema before any row.
func (s *Server) psiBlind(ctx context.Context, cmd *psiCommand, onStart func(psiHeader, *arrow.Schema) error, emit func(arrow.Record) error) (rows int64, err error) {
	ctx, span := s.startSpan(ctx, "sluice.agent.psi.blind", cmd.Fragment)
	defer func() { span.SetAttributes(tracing.AttrRows.Int64(rows)); tracing.End(span, err) }()
	f := cmd.Fragment
	start := time.Now()
	run := s.newRun(f, start)
	st := psiStoreOf(s)
	var sess *psiSession
	defer func() {
		if run != nil {
			run.discard()
			if err != nil {
				run.fail(ctx, err)
			}
		}
		if sess != nil {
			if err != nil {
				st.close(sess.id)
			} else {
				st.release(sess)
			}
		}
		s.logQuery(f, rows, time.Since(start), err)
		s.metrics.psiStep("blind", rows, time.Since(start), err)
		if err == nil && sess != nil {
			s.log.Info("psi session opened", "query_id", f.QueryID, "psi_session", sess.id, "dataset", sess.dataset)
		}
	}()
	if run != nil {
		// The broker's anchor goes on every entry of the run, a refusal's
		// too.
		if run.peer, err = brokerAnchor(ctx); err != nil {
			return 0, err
		}
	}
	p, key, err := s.psiPrepare(cmd)
	if err != nil {
		return 0, err
	}
	rendered := p.f
	var hash func(string) uint64
	if p.f.UnitAlias != "" {
		rendered = withUnitItem(p.f, p.unit)
		scope, err := unitScope(p.f, p.ds)
		if err != nil {
			return 0, err
		}
		hash = unitHash(s.unitKey.Scope(scope))
	}
	sqlText, args, err := planner.Render(rendered, p.ds, p.db.Driver())
	if err != nil {
		return 0, asInvalid(err)
	}
	if sess, err = st.open(f.QueryID, p.ds.FullName()); err != nil {
		return 0, err
	}
	schema := psiSchema(p.fields, cmd.KeyDomain)
	hdr := psiHeader{Session: sess.id, Group: psi.GroupName, KeyDomain: cmd.KeyDomain, KeyColumn: key.Name}
	if run != nil {
		// Write-ahead, before the PSI header (the first message) leaves,
		// so the agent's anchor rides in the response header.
		if err := run.begin(ctx, p.ds, schema, sqlText); err != nil {
			return 0, err
		}
	}
	if err := onStart(hdr, schema); err != nil {
		return 0, err
	}
	guarded := func(rec arrow.Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(rec); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
		return nil
	}
	sink := guarded
	if run != nil {
		sink = run.hold(guarded)
	}
	var sent int64
	plainSchema := adapters.Schema(p.fields)
	blindEmit := func(rec arrow.Record) error {
		if hash != nil {
			// The person key becomes its pseudonym before anything else.
			pr, err := pseudonymise(rec, plainSchema, hash)
			if err != nil {
				return err
			}
			defer pr.Release()
			rec = pr
		}
		out, err := blindRecord(ctx, sess.secret, rec, schema, cmd.KeyDomain)
		if err != nil {
			return err
		}
		defer out.Release()
		n := out.NumRows()
		if err := sink(out); err != nil {
			return err
		}
		sent += n
		return nil
	}
	if _, err := p.db.Scan(ctx, sqlText, args, p.scanFields, s.opts.batchRows, blindEmit); err != nil {
		if run != nil {
			return run.sent, err
		}
		return sent, err
	}
	if run == nil {
		return sent, nil
	}
	if err := run.finish(ctx, guarded); err != nil {
		return run.sent, err
	}
	return run.sent, nil
}

// blindRecord replaces column 0 (the raw key) of rec by its blinded form.
func blindRecord(ctx context.Context, secret *psi.Secret, rec arrow.Record, schema *arrow.Schema, domain string) (arrow.Record, error) {
	n := int(rec.NumRows())
	keys := make([]string, n)
	switch col := rec.Column(0).(type) {
	case *array.String:
		for i := 0; i < n; i++ {
			if col.IsValid(i) {
				keys[i] = psi.Normalize(col.Value(i))
			}
		}
	case *array.LargeString:
		for i := 0; i < n; i++ {
			if col.IsValid(i) {
				keys[i] = psi.Normalize(col.Value(i))
			}
		}
	case *array.Int64:
		for i := 0; i < n; i++ {
			if col.IsValid(i) {
				keys[i] = strconv.FormatInt(col.Value(i), 10)
			}
		}
	default:
		return nil, sluice.Errorf(sluice.EInternal, "the join key was read as %s; private joins take text or integer keys", col.DataType())
	}
	blinded, err := secret.BlindAll(ctx, keys, domain)
	if err != nil {
		return nil, err
	}
	b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
	defer b.Release()
	b.Reserve(n)
	b.ReserveData(n * psi.PointLen)
	for _, v := range blinded {
		if v == nil {
			b.AppendNull()
		} else {
			b.Append(v)
		}
	}
	keyArr := b.NewArray()
	defer keyArr.Release()
	cols := make([]arrow.Array, rec.NumCols())
	cols[0] = keyArr
	for i := 1; i < len(cols); i++ {
		cols[i] = rec.Column(i)
	}
	return array.NewRecord(schema, cols, int64(n)), nil
}

var psiPointSchema = arrow.NewSchema([]arrow.Field{{Name: psiKeyField, Type: arrow.BinaryTypes.Binary, Nullable: true}}, nil)

// psiReblind applies the session's secret to the points of in, batch by
// batch, writing one record per batch to out.
func (s *Server) psiReblind(ctx context.Context, id string, in *flight.Reader, out *flight.Writer) (points int64, err error) {
	ctx, span := s.startSpan(ctx, "sluice.agent.psi.reblind", nil)
	defer func() { span.SetAttributes(tracing.AttrKeys.Int64(points)); tracing.End(span, err) }()
	start := time.Now()
	st := psiStoreOf(s)
	sess, err := st.acquireForReblind(id)
	if err != nil {
		return 0, err
	}
	span.SetAttributes(tracing.AttrQueryID.String(sess.queryID), tracing.AttrDataset.String(sess.dataset))
	defer func() {
		st.release(sess)
		s.metrics.psiStep("reblind", points, time.Since(start), err)
		attrs := []any{"query_id", sess.queryID, "psi_session", id, "dataset", sess.dataset, "points", points, "duration", time.Since(start)}
		if err != nil {
			s.log.Warn("psi reblind failed", append(attrs, "code", errorCode(err))...)
			return
		}
		s.log.Info("psi reblind served", attrs...)
	}()
	if sc := in.Schema(); sc.NumFields() != 1 || !arrow.TypeEqual(sc.Field(0).Type, arrow.BinaryTypes.Binary) {
		return 0, sluice.Errorf(sluice.EInvalid, "a psi-reblind stream must have exactly one binary column of points; got %s", sc)
	}
	for in.Next() {
		rec := in.Record()
		col, ok := rec.Column(0).(*array.Binary)
		if !ok {
			return points, sluice.Errorf(sluice.EInvalid, "a psi-reblind record must hold one binary column")
		}
		n := col.Len()
		pts := make([][]byte, 0, n)
		for i := 0; i < n; i++ {
			if col.IsValid(i) {
				pts = append(pts, col.Value(i))
			}
		}
		res, err := sess.secret.ReblindAll(ctx, pts)
		if err != nil {
			if sluice.ErrorCode(err) == sluice.EInvalid {
				return points, sluice.Errorf(sluice.EInvalid, "in the psi-reblind batch starting at point %d (counting valid points only): %s", points, sluice.ErrorMessage(err))
			}
			return points, err
		}
		b := array.NewBinaryBuilder(memory.DefaultAllocator, arrow.BinaryTypes.Binary)
		b.Reserve(n)
		b.ReserveData(len(res) * psi.PointLen)
		j := 0
		for i := 0; i < n; i++ {
			if col.IsValid(i) {
				b.Append(res[j])
				j++
			} else {
				b.AppendNull()
			}
		}
		arr := b.NewArray()
		b.Release()
		outRec := array.NewRecord(psiPointSchema, []arrow.Array{arr}, int64(n))
		arr.Release()
		err = out.Write(outRec)
		outRec.Release()
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return points, cerr
			}
			return points, err
		}
		points += int64(len(res))
	}
	if err := in.Err(); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return points, cerr
		}
		return points, sluice.Errorf(sluice.EInvalid, "the psi-reblind stream cannot be read: %v", err)
	}
	return points, nil
}

// DoExchange serves psi-blind and psi-reblind (see the top of this file).
func (fs *flightService) DoExchange(stream flight.FlightService_DoExchangeServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fs.s.statusError(ctx, sluice.Errorf(sluice.EInvalid, "DoExchange needs a first message holding a PSI command descriptor"))
		}
		return err
	}
	desc := first.GetFlightDescriptor()
	if desc == nil || desc.GetType() != flight.DescriptorCMD {
		return fs.s.statusError(ctx, sluice.Errorf(sluice.EInvalid, "DoExchange needs a command descriptor holding a PSI command as JSON"))
	}
	cmd, err := decodePSICommand(desc.GetCmd())
	if err != nil {
		return fs.s.statusError(ctx, err)
	}
	switch cmd.Op {
	case actionPSIBlind:
		sink := fs.newSink(ctx, stream)
		onStart := func(h psiHeader, sc *arrow.Schema) error {
			meta, err := json.Marshal(h)
			if err != nil {
				return sluice.Errorf(sluice.EInternal, "the PSI header cannot be encoded: %v", err)
			}
			if err := stream.Send(&flight.FlightData{AppMetadata: meta}); err != nil {
				return err
			}
			sink.start(sc)
			return nil
		}
		if _, err := fs.s.psiBlind(ctx, cmd, onStart, sink.emit); err != nil {
			return fs.s.statusError(ctx, err)
		}
		if err := sink.close(); err != nil {
			return fs.s.statusError(ctx, err)
		}
		return nil
	case actionPSIReblind:
		if cmd.Fragment != nil || cmd.KeyColumn != "" || cmd.KeyDomain != "" {
			return fs.s.statusError(ctx, sluice.Errorf(sluice.EInvalid, "a psi-reblind command holds only the session"))
		}
		in, err := flight.NewRecordReader(stream, ipc.WithAllocator(memory.DefaultAllocator))
		if err != nil {
			return fs.s.statusError(ctx, sluice.Errorf(sluice.EInvalid, "the psi-reblind points cannot be read: %v", err))
		}
		defer in.Release()
		w := flight.NewRecordWriter(stream, ipc.WithSchema(psiPointSchema), ipc.WithAllocator(memory.DefaultAllocator))
		if _, err := fs.s.psiReblind(ctx, cmd.Session, in, w); err != nil {
			return fs.s.statusError(ctx, err)
		}
		if err := w.Close(); err != nil {
			return fs.s.statusError(ctx, err)
		}
		return nil
	}
	return fs.s.statusError(ctx, sluice.Errorf(sluice.ENotSupported, "unknown PSI exchange %q; the agent knows %s and %s", cmd.Op, actionPSIBlind, actionPSIReblind))
}

// servePSIClose answers the psi-close action.
func (fs *flightService) servePSIClose(raw []byte, stream flight.FlightService_DoActionServer) error {
	ctx := stream.Context()
	cmd, err := decodePSICommand(raw)
	if err != nil {
		return fs.s.statusError(ctx, err)
	}
	if cmd.Session == "" || cmd.Op != "" || cmd.Fragment != nil {
		return fs.s.statusError(ctx, sluice.Errorf(sluice.EInvalid, `psi-close takes {"session": id}`))
	}
	if psiStoreOf(fs.s).close(cmd.Session) {
		fs.s.log.Info("psi session closed", "psi_session", cmd.Session)
	}
	return stream.Send(&flight.Result{Body: []byte("ok")})
}

// psiActionTypes are listed by ListActions.
var psiActionTypes = []*flight.ActionType{
	{Type: actionPSIClose, Description: `destroys the secret of a PSI session: {"session": id}; psi-blind and psi-reblind are DoExchange commands`},
}
