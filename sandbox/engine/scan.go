//go:build duckdb_arrow

package engine

/*
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE

#define ARROW_FLAG_DICTIONARY_ORDERED 1
#define ARROW_FLAG_NULLABLE 2
#define ARROW_FLAG_MAP_KEYS_SORTED 4

struct ArrowSchema {
	const char *format;
	const char *name;
	const char *metadata;
	int64_t flags;
	int64_t n_children;
	struct ArrowSchema **children;
	struct ArrowSchema *dictionary;
	void (*release)(struct ArrowSchema *);
	void *private_data;
};

struct ArrowArray {
	int64_t length;
	int64_t null_count;
	int64_t offset;
	int64_t n_buffers;
	int64_t n_children;
	const void **buffers;
	struct ArrowArray **children;
	struct ArrowArray *dictionary;
	void (*release)(struct ArrowArray *);
	void *private_data;
};

#endif // ARROW_C_DATA_INTERFACE

// The DuckDB C API (duckdb.h of duckdb-go-bindings, which links the
// library): only the functions this file uses, with its opaque handles as
// void pointers.
typedef uint64_t idx_t;
typedef void *duckdb_connection;
typedef void *duckdb_table_function;
typedef void *duckdb_bind_info;
typedef void *duckdb_init_info;
typedef void *duckdb_function_info;
typedef void *duckdb_data_chunk;
typedef void *duckdb_vector;
typedef void *duckdb_value;
typedef void *duckdb_logical_type;
typedef void *duckdb_error_data;
typedef void *duckdb_arrow_converted_schema;
typedef void *duckdb_prepared_statement;
typedef void *duckdb_pending_result;
typedef int duckdb_state;
typedef void *duckdb_database;
typedef void *duckdb_client_context;
typedef void *duckdb_replacement_scan_info;
typedef void (*duckdb_delete_callback_t)(void *data);

#define SLUICE_DUCKDB_TYPE_BIGINT 5

duckdb_table_function duckdb_create_table_function(void);
void duckdb_destroy_table_function(duckdb_table_function *table_function);
void duckdb_table_function_set_name(duckdb_table_function table_function, const char *name);
void duckdb_table_function_add_parameter(duckdb_table_function table_function, duckdb_logical_type type);
void duckdb_table_function_set_extra_info(duckdb_table_function table_function, void *extra_info, duckdb_delete_callback_t destroy);
void duckdb_table_function_set_bind(duckdb_table_function table_function, void (*bind)(duckdb_bind_info));
void duckdb_table_function_set_init(duckdb_table_function table_function, void (*init)(duckdb_init_info));
void duckdb_table_function_set_function(duckdb_table_function table_function, void (*function)(duckdb_function_info, duckdb_data_chunk));
void duckdb_table_function_supports_projection_pushdown(duckdb_table_function table_function, bool pushdown);
duckdb_state duckdb_register_table_function(duckdb_connection con, duckdb_table_function function);
void *duckdb_bind_get_extra_info(duckdb_bind_info info);
void duckdb_bind_add_result_column(duckdb_bind_info info, const char *name, duckdb_logical_type type);
duckdb_value duckdb_bind_get_parameter(duckdb_bind_info info, idx_t index);
void duckdb_bind_set_bind_data(duckdb_bind_info info, void *bind_data, duckdb_delete_callback_t destroy);
void duckdb_bind_set_error(duckdb_bind_info info, const char *error);
void *duckdb_init_get_bind_data(duckdb_init_info info);
void duckdb_init_set_init_data(duckdb_init_info info, void *init_data, duckdb_delete_callback_t destroy);
idx_t duckdb_init_get_column_count(duckdb_init_info info);
idx_t duckdb_init_get_column_index(duckdb_init_info info, idx_t column_index);
void duckdb_init_set_max_threads(duckdb_init_info info, idx_t max_threads);
void duckdb_init_set_error(duckdb_init_info info, const char *error);
void *duckdb_function_get_bind_data(duckdb_function_info info);
void *duckdb_function_get_init_data(duckdb_function_info info);
void duckdb_function_set_error(duckdb_function_info info, const char *error);
int64_t duckdb_get_int64(duckdb_value val);
void duckdb_destroy_value(duckdb_value *value);
duckdb_logical_type duckdb_create_logical_type(int type);
void duckdb_destroy_logical_type(duckdb_logical_type *type);
duckdb_vector duckdb_data_chunk_get_vector(duckdb_data_chunk chunk, idx_t col_idx);
idx_t duckdb_data_chunk_get_size(duckdb_data_chunk chunk);
void duckdb_data_chunk_set_size(duckdb_data_chunk chunk, idx_t size);
void duckdb_destroy_data_chunk(duckdb_data_chunk *chunk);
void duckdb_vector_reference_vector(duckdb_vector to_vector, duckdb_vector from_vector);
duckdb_error_data duckdb_data_chunk_from_arrow(duckdb_connection connection, struct ArrowArray *arrow_array, duckdb_arrow_converted_schema converted_schema, duckdb_data_chunk *out_chunk);
bool duckdb_error_data_has_error(duckdb_error_data error_data);
const char *duckdb_error_data_message(duckdb_error_data error_data);
void duckdb_destroy_error_data(duckdb_error_data *error_data);
idx_t duckdb_vector_size(void);
duckdb_state duckdb_pending_prepared_streaming(duckdb_prepared_statement prepared_statement, duckdb_pending_result *out_result);
void duckdb_add_replacement_scan(duckdb_database db, void (*replacement)(duckdb_replacement_scan_info, const char *, void *), void *extra_data, duckdb_delete_callback_t delete_callback);
void duckdb_replacement_scan_set_function_name(duckdb_replacement_scan_info info, const char *function_name);
void duckdb_replacement_scan_add_parameter(duckdb_replacement_scan_info info, duckdb_value parameter);
duckdb_value duckdb_create_int64(int64_t val);
void duckdb_connection_get_client_context(duckdb_connection connection, duckdb_client_context *out_context);
void duckdb_destroy_client_context(duckdb_client_context *context);
duckdb_value duckdb_client_context_get_config_option(duckdb_client_context context, const char *name, void *out_scope);
char *duckdb_value_to_string(duckdb_value value);
void duckdb_free(void *ptr);

// sluiceNextBatch, sluiceBind and sluiceReplace are in Go (see below).
extern int sluiceNextBatch(uintptr_t input, struct ArrowArray *out);
extern void *sluiceBind(uintptr_t db, int64_t token);
extern int64_t sluiceReplace(uintptr_t db, char *name);

// A batch exported by Go, shared by the slices DuckDB holds of it: the
// last one to let go releases it.
typedef struct sluice_batch {
	struct ArrowArray arr;
	int64_t refs;
} sluice_batch;

static void sluice_batch_unref(sluice_batch *b) {
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (b->arr.release != NULL) {
			b->arr.release(&b->arr);
		}
		free(b);
	}
}

// One input that DuckDB scans in place with __sluice_scan: created and
// freed by Go (sluice_scan_new, sluice_scan_free); the scan state is
// guarded by mu, as DuckDB's threads scan in parallel.
typedef struct sluice_scan {
	uintptr_t input;                      // cgo.Handle of the Go *scanInput
	duckdb_connection conv;               // the database's conversion connection
	duckdb_arrow_converted_schema schema; // the stream's schema, converted by DuckDB
	idx_t ncols;
	char **names;
	duckdb_logical_type *types;
	idx_t threads;
	int64_t inits;                        // scans started (atomic)

	pthread_mutex_t mu;
	sluice_batch *cur;                    // the batch being sliced
	int64_t pos;                          // its next row
	int done;                             // 1: end of stream, -1: the stream failed
} sluice_scan;

static sluice_scan *sluice_scan_new(uintptr_t input, duckdb_connection conv, duckdb_arrow_converted_schema schema, idx_t ncols, idx_t threads) {
	sluice_scan *s = calloc(1, sizeof *s);
	if (s == NULL) {
		return NULL;
	}
	s->names = calloc(ncols > 0 ? ncols : 1, sizeof(char *));
	s->types = calloc(ncols > 0 ? ncols : 1, sizeof(duckdb_logical_type));
	if (s->names == NULL || s->types == NULL) {
		free(s->names);
		free(s->types);
		free(s);
		return NULL;
	}
	s->input = input;
	s->conv = conv;
	s->schema = schema;
	s->ncols = ncols;
	s->threads = threads;
	pthread_mutex_init(&s->mu, NULL);
	return s;
}

// sluice_scan_set_column takes name (malloc'd) and type over.
static void sluice_scan_set_column(sluice_scan *s, idx_t i, char *name, duckdb_logical_type type) {
	s->names[i] = name;
	s->types[i] = type;
}

// sluice_scan_reset readies s for a new statement's scan from the start of
// the stream; no scan of s may be running.
static void sluice_scan_reset(sluice_scan *s) {
	pthread_mutex_lock(&s->mu);
	if (s->cur != NULL) {
		sluice_batch_unref(s->cur);
		s->cur = NULL;
	}
	s->pos = 0;
	s->done = 0;
	pthread_mutex_unlock(&s->mu);
	__atomic_store_n(&s->inits, 0, __ATOMIC_RELEASE);
}

static int64_t sluice_scan_inits(sluice_scan *s) {
	return __atomic_load_n(&s->inits, __ATOMIC_ACQUIRE);
}

// sluice_scan_free frees s once nothing can scan it (its statements are
// gone). Batches still held by DuckDB's vectors live on until released.
static void sluice_scan_free(sluice_scan *s) {
	if (s->cur != NULL) {
		sluice_batch_unref(s->cur);
	}
	for (idx_t i = 0; i < s->ncols; i++) {
		free(s->names[i]);
		if (s->types[i] != NULL) {
			duckdb_destroy_logical_type(&s->types[i]);
		}
	}
	free(s->names);
	free(s->types);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

// A slice of a batch: the batch's columns with their offsets moved, as
// their own struct array of at most a vector's rows (what
// duckdb_data_chunk_from_arrow converts).
typedef struct sluice_slice {
	sluice_batch *batch;
	struct ArrowArray *children;
	struct ArrowArray **child_ptrs;
	const void *buffers[1];
} sluice_slice;

static void sluice_noop_release(struct ArrowArray *a) {
	a->release = NULL;
}

static void sluice_slice_release(struct ArrowArray *a) {
	sluice_slice *p = a->private_data;
	sluice_batch_unref(p->batch);
	free(p->children);
	free(p->child_ptrs);
	free(p);
	a->release = NULL;
}

// sluice_next_slice fills out with the next slice of the stream: 1, or 0
// at its end, or -1 if the stream failed (Go holds the error).
static int sluice_next_slice(sluice_scan *s, struct ArrowArray *out) {
	int64_t max = (int64_t)duckdb_vector_size();
	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (s->cur != NULL && s->pos < s->cur->arr.length) {
			break;
		}
		if (s->cur != NULL) {
			sluice_batch_unref(s->cur);
			s->cur = NULL;
		}
		if (s->done != 0) {
			int rc = s->done > 0 ? 0 : -1;
			pthread_mutex_unlock(&s->mu);
			return rc;
		}
		sluice_batch *b = calloc(1, sizeof *b);
		if (b == NULL) {
			s->done = -1;
			continue;
		}
		int rc = sluiceNextBatch(s->input, &b->arr);
		if (rc <= 0) {
			free(b);
			s->done = rc < 0 ? -1 : 1;
			continue;
		}
		b->refs = 1;
		s->cur = b;
		s->pos = 0;
	}
	sluice_batch *b = s->cur;
	int64_t start = s->pos;
	int64_t n = b->arr.length - start;
	if (n > max) {
		n = max;
	}
	s->pos += n;
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&s->mu);

	int64_t nc = b->arr.n_children;
	sluice_slice *p = calloc(1, sizeof *p);
	if (p != NULL) {
		p->children = calloc(nc > 0 ? nc : 1, sizeof(struct ArrowArray));
		p->child_ptrs = calloc(nc > 0 ? nc : 1, sizeof(struct ArrowArray *));
	}
	if (p == NULL || p->children == NULL || p->child_ptrs == NULL) {
		if (p != NULL) {
			free(p->children);
			free(p->child_ptrs);
			free(p);
		}
		sluice_batch_unref(b);
		pthread_mutex_lock(&s->mu);
		s->done = -1;
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	p->batch = b;
	for (int64_t i = 0; i < nc; i++) {
		struct ArrowArray *c = &p->children[i];
		*c = *b->arr.children[i];
		// The batch's offset applies to its columns (record batches from
		// Go have none, but be exact).
		c->offset += b->arr.offset + start;
		c->length = n;
		if (c->null_count != 0) {
			c->null_count = -1; // unknown for the slice
		}
		c->release = sluice_noop_release; // the batch owns the column
		p->child_ptrs[i] = c;
	}
	memset(out, 0, sizeof *out);
	out->length = n;
	out->null_count = 0;
	out->offset = 0;
	out->n_buffers = 1;
	p->buffers[0] = NULL; // no nulls at the top level of a record batch
	out->buffers = p->buffers;
	out->n_children = nc;
	out->children = p->child_ptrs;
	out->dictionary = NULL;
	out->release = sluice_slice_release;
	out->private_data = p;
	return 1;
}

// The projection of one scan: the stream's columns DuckDB reads, in the
// order of its output.
typedef struct sluice_global {
	idx_t n;
	idx_t cols[];
} sluice_global;

static void sluice_bind(duckdb_bind_info info) {
	uintptr_t db = (uintptr_t)duckdb_bind_get_extra_info(info);
	duckdb_value v = duckdb_bind_get_parameter(info, 0);
	int64_t token = duckdb_get_int64(v);
	duckdb_destroy_value(&v);
	sluice_scan *s = sluiceBind(db, token);
	if (s == NULL) {
		duckdb_bind_set_error(info, "__sluice_scan is internal to the sandbox");
		return;
	}
	for (idx_t i = 0; i < s->ncols; i++) {
		duckdb_bind_add_result_column(info, s->names[i], s->types[i]);
	}
	duckdb_bind_set_bind_data(info, s, NULL);
}

static void sluice_init(duckdb_init_info info) {
	sluice_scan *s = duckdb_init_get_bind_data(info);
	if (__atomic_add_fetch(&s->inits, 1, __ATOMIC_ACQ_REL) > 1) {
		// A stream can be read once; Go decides before each statement
		// which inputs are read in place, so this is a plan that reads
		// one twice (a recursive CTE, say): fail, never read a part.
		duckdb_init_set_error(info, "sluice: an input stream is read more than once by this statement");
		return;
	}
	idx_t n = duckdb_init_get_column_count(info);
	sluice_global *g = malloc(sizeof *g + (n > 0 ? n : 1) * sizeof(idx_t));
	if (g == NULL) {
		duckdb_init_set_error(info, "sluice: out of memory");
		return;
	}
	g->n = n;
	for (idx_t i = 0; i < n; i++) {
		g->cols[i] = duckdb_init_get_column_index(info, i);
		if (g->cols[i] >= s->ncols) {
			free(g);
			duckdb_init_set_error(info, "sluice: a column outside the input was projected");
			return;
		}
	}
	duckdb_init_set_init_data(info, g, free);
	duckdb_init_set_max_threads(info, s->threads);
}

static void sluice_function(duckdb_function_info info, duckdb_data_chunk output) {
	sluice_scan *s = duckdb_function_get_bind_data(info);
	sluice_global *g = duckdb_function_get_init_data(info);
	struct ArrowArray slice;
	int rc = sluice_next_slice(s, &slice);
	if (rc < 0) {
		duckdb_function_set_error(info, "sluice: an input stream failed");
		return;
	}
	if (rc == 0) {
		duckdb_data_chunk_set_size(output, 0);
		return;
	}
	duckdb_data_chunk chunk = NULL;
	duckdb_error_data ed = duckdb_data_chunk_from_arrow(s->conv, &slice, s->schema, &chunk);
	if (ed != NULL && duckdb_error_data_has_error(ed)) {
		duckdb_function_set_error(info, duckdb_error_data_message(ed));
		duckdb_destroy_error_data(&ed);
		if (slice.release != NULL) {
			slice.release(&slice);
		}
		if (chunk != NULL) {
			duckdb_destroy_data_chunk(&chunk);
		}
		return;
	}
	if (ed != NULL) {
		duckdb_destroy_error_data(&ed);
	}
	// The chunk owns the slice now.
	for (idx_t j = 0; j < g->n; j++) {
		duckdb_vector_reference_vector(duckdb_data_chunk_get_vector(output, j), duckdb_data_chunk_get_vector(chunk, g->cols[j]));
	}
	duckdb_data_chunk_set_size(output, duckdb_data_chunk_get_size(chunk));
	duckdb_destroy_data_chunk(&chunk);
}

// sluice_register_scan registers __sluice_scan(BIGINT) on the database of
// con; db identifies the database's registry in Go.
static int sluice_register_scan(duckdb_connection con, uintptr_t db) {
	duckdb_table_function tf = duckdb_create_table_function();
	duckdb_table_function_set_name(tf, "__sluice_scan");
	duckdb_logical_type bigint = duckdb_create_logical_type(SLUICE_DUCKDB_TYPE_BIGINT);
	duckdb_table_function_add_parameter(tf, bigint);
	duckdb_destroy_logical_type(&bigint);
	duckdb_table_function_set_extra_info(tf, (void *)db, NULL);
	duckdb_table_function_set_bind(tf, sluice_bind);
	duckdb_table_function_set_init(tf, sluice_init);
	duckdb_table_function_set_function(tf, sluice_function);
	duckdb_table_function_supports_projection_pushdown(tf, true);
	duckdb_state st = duckdb_register_table_function(con, tf);
	duckdb_destroy_table_function(&tf);
	return st == 0 ? 0 : -1;
}

// sluice_replace resolves the name of an input stream that is not in the
// catalog to __sluice_scan(token).
static void sluice_replace(duckdb_replacement_scan_info info, const char *table_name, void *data) {
	int64_t token = sluiceReplace((uintptr_t)data, (char *)table_name);
	if (token == 0) {
		return;
	}
	duckdb_replacement_scan_set_function_name(info, "__sluice_scan");
	duckdb_value v = duckdb_create_int64(token);
	duckdb_replacement_scan_add_parameter(info, v);
	duckdb_destroy_value(&v);
}

static void sluice_add_replacement(duckdb_database db, uintptr_t reg) {
	duckdb_add_replacement_scan(db, sluice_replace, (void *)reg, NULL);
}

// sluice_setting returns the value of setting name on con as text
// (duckdb_free it), or NULL if there is no such setting.
static char *sluice_setting(duckdb_connection con, const char *name) {
	duckdb_client_context ctx = NULL;
	duckdb_connection_get_client_context(con, &ctx);
	if (ctx == NULL) {
		return NULL;
	}
	duckdb_value v = duckdb_client_context_get_config_option(ctx, name, NULL);
	duckdb_destroy_client_context(&ctx);
	if (v == NULL) {
		return NULL;
	}
	char *s = duckdb_value_to_string(v);
	duckdb_destroy_value(&v);
	return s;
}

static duckdb_state sluice_pending_streaming(void *stmt, void **out) {
	return duckdb_pending_prepared_streaming(stmt, out);
}
*/
import "C"

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/cdata"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2/arrowmapping"
	"github.com/duckdb/duckdb-go/v2/mapping"

	sluice "github.com/sluice-gov/sluice"
)

// scanTwiceMsg is the error of __sluice_scan's init for a second scan of a
// stream in one statement.
const scanTwiceMsg = "sluice: an input stream is read more than once by this statement"

// scanFunction is the table function through which DuckDB reads input
// streams in place: __sluice_scan(token). It is registered in every
// database of the engine; a token names an input of the session that uses
// the database, and only while that input is an unread stream, so a query
// can reach no other session's stream and no stream twice.
const scanFunction = "__sluice_scan"

// scanRegistry holds the inputs of the session using a database, by token.
type scanRegistry struct {
	handle cgo.Handle // to itself: the function's extra info

	mu     sync.Mutex
	inputs map[int64]*scanInput
	byName map[string]*scanInput // streams resolved by a replacement scan, by lower-cased name
}

func newScanRegistry() *scanRegistry {
	r := &scanRegistry{inputs: map[int64]*scanInput{}, byName: map[string]*scanInput{}}
	r.handle = cgo.NewHandle(r)
	return r
}

// close drops the registry's handle; its database is closed.
func (r *scanRegistry) close() {
	if r.handle != 0 {
		r.handle.Delete()
		r.handle = 0
	}
}

// resetBinds zeroes the bind counts, before a statement is prepared.
func (r *scanRegistry) resetBinds() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, si := range r.inputs {
		si.binds = 0
		si.refused = false
	}
}

func (r *scanRegistry) remove(si *scanInput) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inputs[si.token] == si {
		delete(r.inputs, si.token)
	}
	if name := strings.ToLower(si.in.name); r.byName[name] == si {
		delete(r.byName, name)
	}
}

// resolves tells whether si's name is resolved by the replacement scan
// (rather than a view).
func (r *scanRegistry) resolves(si *scanInput) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byName[strings.ToLower(si.in.name)] == si
}

// resolve makes DuckDB's replacement scan resolve si's name to its stream.
func (r *scanRegistry) resolve(si *scanInput) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byName[strings.ToLower(si.in.name)] = si
}

// registerScan registers __sluice_scan on con's database.
func registerScan(con mapping.Connection, reg *scanRegistry) bool {
	return C.sluice_register_scan(C.duckdb_connection(con.Ptr), C.uintptr_t(reg.handle)) == 0
}

// addReplacementScan makes db resolve the names reg.resolve was given.
func addReplacementScan(db mapping.Database, reg *scanRegistry) {
	C.sluice_add_replacement(C.duckdb_database(db.Ptr), C.uintptr_t(reg.handle))
}

//export sluiceReplace
func sluiceReplace(db C.uintptr_t, name *C.char) (token C.int64_t) {
	defer func() {
		if recover() != nil {
			token = 0
		}
	}()
	reg := cgo.Handle(db).Value().(*scanRegistry)
	n := strings.ToLower(C.GoString(name))
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if si := reg.byName[n]; si != nil {
		return C.int64_t(si.token)
	}
	return 0
}

// setting reads a setting of conn through the C API (no statement).
func setting(conn mapping.Connection, name string) (string, bool) {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	v := C.sluice_setting(C.duckdb_connection(conn.Ptr), cn)
	if v == nil {
		return "", false
	}
	defer C.duckdb_free(unsafe.Pointer(v))
	return C.GoString(v), true
}

// pendingStreaming is duckdb_pending_prepared_streaming, which
// duckdb-go's mapping package does not wrap.
func pendingStreaming(stmt mapping.PreparedStatement, out *mapping.PendingResult) mapping.State {
	var p unsafe.Pointer
	st := C.sluice_pending_streaming(stmt.Ptr, &p)
	out.Ptr = p
	if st != 0 {
		return mapping.StateError
	}
	return mapping.StateSuccess
}

// The functions DuckDB calls back (sluiceBind, sluiceReplace,
// sluiceNextBatch) must not panic: a panic would unwind through DuckDB's
// frames, holding its locks. They recover, and fail the call.

//export sluiceBind
func sluiceBind(db C.uintptr_t, token C.int64_t) (p unsafe.Pointer) {
	defer func() {
		if recover() != nil {
			p = nil
		}
	}()
	reg := cgo.Handle(db).Value().(*scanRegistry)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	si := reg.inputs[int64(token)]
	if si == nil || si.c == nil {
		return nil
	}
	if si.st != inputStream || !si.reading && !si.in.canScan() {
		si.refused = true
		return nil
	}
	si.binds++
	return unsafe.Pointer(si.c)
}

//export sluiceNextBatch
func sluiceNextBatch(h C.uintptr_t, out *C.struct_ArrowArray) (rc C.int) {
	var si *scanInput
	defer func() {
		if p := recover(); p != nil {
			if si != nil {
				si.in.fail(sluice.Errorf(sluice.EInternal, "sandbox: reading input %q: %v", si.in.name, p))
			}
			rc = -1
		}
	}()
	si = cgo.Handle(h).Value().(*scanInput)
	return C.int(si.nextBatch(out))
}

// The states of an input known to DuckDB.
const (
	inputStream = iota // read by __sluice_scan (as long as in.canScan)
	inputCopied        // copied into a table
)

// scanInput is an input stream as DuckDB scans it: its C state, its
// converted schema and column types.
type scanInput struct {
	in     *input
	schema *arrow.Schema
	token  int64
	handle cgo.Handle
	c      *C.sluice_scan
	conv   arrowmapping.ArrowConvertedSchema
	reg    *scanRegistry

	// Guarded by the registry's mu.
	st      int
	reading bool // the statement reading the stream is running (DuckDB may bind it again)
	binds   int  // binds by the statement being prepared
	refused bool // a bind was refused: the stream is no longer there
}

func (si *scanInput) state() int {
	si.reg.mu.Lock()
	defer si.reg.mu.Unlock()
	return si.st
}

func (si *scanInput) setState(st int) {
	si.reg.mu.Lock()
	defer si.reg.mu.Unlock()
	si.st = st
}

// startRead prepares the stream for the statement about to run, which
// reads it from its start under ctx.
func (si *scanInput) startRead(ctx context.Context) {
	C.sluice_scan_reset(si.c)
	si.in.startScan(ctx)
	si.reg.mu.Lock()
	si.reading = true
	si.reg.mu.Unlock()
}

// endRead marks the end of the statement reading the stream.
func (si *scanInput) endRead() {
	si.reg.mu.Lock()
	si.reading = false
	si.reg.mu.Unlock()
	si.in.endScan()
}

// bindCount is how often the statement prepared last reads the stream.
func (si *scanInput) bindCount() int {
	si.reg.mu.Lock()
	defer si.reg.mu.Unlock()
	return si.binds
}

// rebound tells whether the statement prepared last named the input after
// its stream was read or copied.
func (si *scanInput) rebound() bool {
	si.reg.mu.Lock()
	defer si.reg.mu.Unlock()
	return si.refused
}

// newScanInput prepares in for __sluice_scan in a database whose
// conversion connection is conv, and registers it in reg.
func newScanInput(reg *scanRegistry, conv mapping.Connection, in *input, threads int) (*scanInput, error) {
	si := &scanInput{in: in, schema: in.r.Schema(), reg: reg}
	if si.schema == nil {
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: input %q has no schema", in.name)
	}
	cs, ed := arrowmapping.SchemaFromArrow(conv, si.schema)
	if msg, failed := errorData(ed); failed {
		arrowmapping.DestroyArrowConvertedSchema(&cs)
		return nil, sluice.Errorf(sluice.EInvalid, "the sandbox cannot read input %q: %s", in.name, firstLine(msg))
	}
	si.conv = cs
	// DuckDB's types for the columns: those of an empty batch, converted.
	b := array.NewRecordBuilder(memory.DefaultAllocator, si.schema)
	empty := b.NewRecordBatch()
	b.Release()
	chunk, ed := arrowmapping.DataChunkFromArrow(conv, empty, cs)
	empty.Release()
	if msg, failed := errorData(ed); failed {
		mapping.DestroyDataChunk(&chunk)
		si.free()
		return nil, sluice.Errorf(sluice.EInvalid, "the sandbox cannot read input %q: %s", in.name, firstLine(msg))
	}
	defer mapping.DestroyDataChunk(&chunk)
	n := int(mapping.DataChunkGetColumnCount(chunk))
	if n != si.schema.NumFields() {
		si.free()
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: input %q: DuckDB converted %d of its %d columns", in.name, n, si.schema.NumFields())
	}
	si.handle = cgo.NewHandle(si)
	si.c = C.sluice_scan_new(C.uintptr_t(si.handle), C.duckdb_connection(conv.Ptr), C.duckdb_arrow_converted_schema(cs.Ptr), C.idx_t(n), C.idx_t(max(threads, 1)))
	if si.c == nil {
		si.free()
		return nil, sluice.Errorf(sluice.EInternal, "sandbox: out of memory registering input %q", in.name)
	}
	for i := range n {
		lt := mapping.VectorGetColumnType(mapping.DataChunkGetVector(chunk, mapping.IdxT(i)))
		C.sluice_scan_set_column(si.c, C.idx_t(i), C.CString(si.schema.Field(i).Name), C.duckdb_logical_type(lt.Ptr))
	}
	reg.mu.Lock()
	for {
		var t [8]byte
		_, _ = rand.Read(t[:])
		si.token = int64(binary.LittleEndian.Uint64(t[:]) >> 1)
		if _, taken := reg.inputs[si.token]; !taken && si.token != 0 {
			break
		}
	}
	reg.inputs[si.token] = si
	reg.mu.Unlock()
	return si, nil
}

// inits is the number of scans of the input started so far.
func (si *scanInput) inits() int64 { return int64(C.sluice_scan_inits(si.c)) }

// free releases the C state. Nothing may scan the input any more: its
// session's statements are gone (Session.Close disconnects first).
func (si *scanInput) free() {
	if si.c != nil {
		C.sluice_scan_free(si.c)
		si.c = nil
	}
	if si.handle != 0 {
		si.handle.Delete()
		si.handle = 0
	}
	arrowmapping.DestroyArrowConvertedSchema(&si.conv)
}

// nextBatch exports the next non-empty batch of the stream to out: 1, or 0
// at the end, or -1 if the stream failed (in.Err tells why) or the
// statement's context is done. DuckDB's threads call it one at a time.
func (si *scanInput) nextBatch(out *C.struct_ArrowArray) int {
	in := si.in
	for {
		rec, err := in.next()
		if err != nil {
			return -1
		}
		if rec == nil {
			return 0
		}
		if rec.NumRows() == 0 {
			continue
		}
		if !sameTypes(rec.Schema(), si.schema) {
			in.fail(sluice.Errorf(sluice.EInternal, "sandbox: input %q changed its schema in the middle of the stream", in.name))
			return -1
		}
		cdata.ExportArrowRecordBatch(rec, (*cdata.CArrowArray)(unsafe.Pointer(out)), nil)
		return 1
	}
}

// sameTypes reports whether a and b have the same column types (what the
// converted schema depends on).
func sameTypes(a, b *arrow.Schema) bool {
	if a == b {
		return true
	}
	if a.NumFields() != b.NumFields() {
		return false
	}
	for i := range a.NumFields() {
		if !arrow.TypeEqual(a.Field(i).Type, b.Field(i).Type) {
			return false
		}
	}
	return true
}

// errorData returns the message of ed, if it holds an error, and destroys it.
func errorData(ed mapping.ErrorData) (string, bool) {
	if ed.Ptr == nil {
		return "", false
	}
	defer mapping.DestroyErrorData(&ed)
	if !mapping.ErrorDataHasError(ed) {
		return "", false
	}
	return mapping.ErrorDataMessage(ed), true
}
