package audit

import "context"

// Ready reports whether the log can be written now, for a readiness probe:
// it takes the writer token, begins a write transaction (which takes the
// store's write lock and checks that the store's head is the one this Log
// wrote, exactly as an append would) and rolls it back. It writes nothing.
func (l *Log) Ready(ctx context.Context) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	tx, _, err := l.beginWrite(ctx)
	if err != nil {
		return err
	}
	return tx.Rollback()
}
