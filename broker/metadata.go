package broker

import (
	"context"
	"regexp"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql"
	"github.com/apache/arrow-go/v18/arrow/flight/flightsql/schema_ref"
	"github.com/google/uuid"

	sluice "github.com/sluice-gov/sluice"
	"github.com/sluice-gov/sluice/adapters"
	"github.com/sluice-gov/sluice/broker/audit"
	"github.com/sluice-gov/sluice/broker/state"
	"github.com/sluice-gov/sluice/planner"
)

// CatalogName is the single Flight SQL catalog; departments are its schemas
// and datasets its tables, so analysts write department.dataset.
const CatalogName = "sluice"

// TableType is the Flight SQL table type of every dataset.
const TableType = "TABLE"

// Metadata keys on dataset schemas and fields, for `sluice catalog show`
// and any client that wants the classification.
const (
	MetaTitle           = "sluice.title"
	MetaDescription     = "sluice.description"
	MetaShareClass      = "sluice.share_class"
	MetaLegalBasis      = "sluice.legal_basis"
	MetaShareConditions = "sluice.share_conditions"
	MetaUpdateFrequency = "sluice.update_frequency"
	MetaDepartment      = "sluice.department"
	MetaGrade           = "sluice.grade"
	MetaRelease         = "sluice.release"
	MetaMask            = "sluice.mask"
	MetaKeyDomain       = "sluice.key_domain"
	MetaUnique          = "sluice.unique"      // "true": one row per value (a person key)
	MetaDPRequired      = "sluice.dp_required" // "true": released only under a differential-privacy budget
	MetaColumnDesc      = "sluice.description"
)

func (s *Server) metadataInfo(desc *flight.FlightDescriptor, schema *arrow.Schema) *flight.FlightInfo {
	return &flight.FlightInfo{
		Endpoint:         []*flight.FlightEndpoint{{Ticket: &flight.Ticket{Ticket: desc.Cmd}}},
		FlightDescriptor: desc,
		Schema:           flight.SerializeSchema(schema, s.Alloc),
		TotalRecords:     -1,
		TotalBytes:       -1,
	}
}

func (s *Server) GetFlightInfoCatalogs(_ context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.metadataInfo(desc, schema_ref.Catalogs), nil
}

func (s *Server) DoGetCatalogs(ctx context.Context) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	if err := s.auditMetadata(ctx, "catalogs"); err != nil {
		return nil, nil, err
	}
	b := array.NewRecordBuilder(s.Alloc, schema_ref.Catalogs)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(CatalogName)
	return s.single(ctx, schema_ref.Catalogs, b.NewRecord())
}

func (s *Server) GetFlightInfoSchemas(_ context.Context, _ flightsql.GetDBSchemas, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.metadataInfo(desc, schema_ref.DBSchemas), nil
}

func (s *Server) DoGetDBSchemas(ctx context.Context, cmd flightsql.GetDBSchemas) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	if err := s.auditMetadata(ctx, "db_schemas"); err != nil {
		return nil, nil, err
	}
	b := array.NewRecordBuilder(s.Alloc, schema_ref.DBSchemas)
	defer b.Release()
	if catalogMatches(cmd.GetCatalog()) {
		match := likeMatcher(cmd.GetDBSchemaFilterPattern())
		for _, d := range s.snap().Catalog.Departments() {
			if match(d.ID) {
				b.Field(0).(*array.StringBuilder).Append(CatalogName)
				b.Field(1).(*array.StringBuilder).Append(d.ID)
			}
		}
	}
	return s.single(ctx, schema_ref.DBSchemas, b.NewRecord())
}

func (s *Server) GetFlightInfoTables(_ context.Context, cmd flightsql.GetTables, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	if cmd.GetIncludeSchema() {
		return s.metadataInfo(desc, schema_ref.TablesWithIncludedSchema), nil
	}
	return s.metadataInfo(desc, schema_ref.Tables), nil
}

func (s *Server) DoGetTables(ctx context.Context, cmd flightsql.GetTables) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	if err := s.auditMetadata(ctx, "tables"); err != nil {
		return nil, nil, err
	}
	p, _ := principalFrom(ctx)
	schema := schema_ref.Tables
	if cmd.GetIncludeSchema() {
		schema = schema_ref.TablesWithIncludedSchema
	}
	b := array.NewRecordBuilder(s.Alloc, schema)
	defer b.Release()
	typeOK := len(cmd.GetTableTypes()) == 0
	for _, t := range cmd.GetTableTypes() {
		typeOK = typeOK || strings.EqualFold(t, TableType)
	}
	if catalogMatches(cmd.GetCatalog()) && typeOK {
		schemaMatch := likeMatcher(cmd.GetDBSchemaFilterPattern())
		tableMatch := likeMatcher(cmd.GetTableNameFilterPattern())
		for _, ds := range s.snap().Catalog.Datasets() {
			if !schemaMatch(ds.Department) || !tableMatch(ds.Name) {
				continue
			}
			b.Field(0).(*array.StringBuilder).Append(CatalogName)
			b.Field(1).(*array.StringBuilder).Append(ds.Department)
			b.Field(2).(*array.StringBuilder).Append(ds.Name)
			b.Field(3).(*array.StringBuilder).Append(TableType)
			if cmd.GetIncludeSchema() {
				b.Field(4).(*array.BinaryBuilder).Append(flight.SerializeSchema(DatasetSchema(ds, p), s.Alloc))
			}
		}
	}
	return s.single(ctx, schema, b.NewRecord())
}

func (s *Server) GetFlightInfoTableTypes(_ context.Context, desc *flight.FlightDescriptor) (*flight.FlightInfo, error) {
	return s.metadataInfo(desc, schema_ref.TableTypes), nil
}

func (s *Server) DoGetTableTypes(ctx context.Context) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	b := array.NewRecordBuilder(s.Alloc, schema_ref.TableTypes)
	defer b.Release()
	b.Field(0).(*array.StringBuilder).Append(TableType)
	return s.single(ctx, schema_ref.TableTypes, b.NewRecord())
}

// DatasetSchema describes a dataset as p may see it, with the catalog's
// classification as metadata.
func DatasetSchema(ds *sluice.Dataset, p sluice.Principal) *arrow.Schema {
	cols := state.VisibleColumns(ds, p)
	fields := make([]planner.Field, len(cols))
	for i, c := range cols {
		fields[i] = planner.Field{Name: c.Name, Type: c.Type}
	}
	base := adapters.Schema(fields).Fields()
	out := make([]arrow.Field, len(cols))
	for i, c := range cols {
		kv := map[string]string{adapters.MetaType: string(c.Type), MetaGrade: string(c.Grade), MetaRelease: string(c.Release)}
		if c.Mask != "" {
			kv[MetaMask] = string(c.Mask)
		}
		if c.KeyDomain != "" {
			kv[MetaKeyDomain] = c.KeyDomain
		}
		if c.Unique {
			kv[MetaUnique] = "true"
		}
		if c.DPRequired {
			kv[MetaDPRequired] = "true"
		}
		if c.Description != "" {
			kv[MetaColumnDesc] = c.Description
		}
		out[i] = arrow.Field{Name: c.Name, Type: base[i].Type, Nullable: true, Metadata: sortedMetadata(kv)}
	}
	kv := map[string]string{
		MetaDepartment:      ds.Department,
		MetaShareClass:      string(ds.ShareClass),
		MetaTitle:           ds.Title,
		MetaDescription:     ds.Description,
		MetaLegalBasis:      ds.LegalBasis,
		MetaShareConditions: ds.ShareConditions,
		MetaUpdateFrequency: ds.UpdateFrequency,
	}
	md := sortedMetadata(kv)
	return arrow.NewSchema(out, &md)
}

func sortedMetadata(kv map[string]string) arrow.Metadata {
	keys := make([]string, 0, len(kv))
	for k, v := range kv {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = kv[k]
	}
	return arrow.NewMetadata(keys, vals)
}

// single streams one record through a buffered channel, so no goroutine is
// left blocked when the client goes away.
func (s *Server) single(_ context.Context, schema *arrow.Schema, rec arrow.Record) (*arrow.Schema, <-chan flight.StreamChunk, error) {
	ch := make(chan flight.StreamChunk, 1)
	ch <- flight.StreamChunk{Data: rec}
	close(ch)
	return schema, ch, nil
}

func (s *Server) auditMetadata(ctx context.Context, what string) error {
	p, _ := principalFrom(ctx)
	e := &audit.Entry{
		Kind:       "metadata",
		QueryID:    uuid.NewString(),
		Principal:  p.Name,
		Role:       string(p.Role),
		Department: p.Department,
		Purpose:    purposeHeader(ctx),
		ClientAddr: clientAddr(ctx),
		Decision:   "allow",
		Reasons:    []string{"browse " + what},
	}
	if err := s.record(context.WithoutCancel(ctx), e); err != nil {
		return toStatus(err)
	}
	return nil
}

func catalogMatches(c *string) bool { return c == nil || *c == "" || *c == CatalogName }

// likeMatcher implements Flight SQL filter patterns (SQL LIKE: % and _).
func likeMatcher(pattern *string) func(string) bool {
	if pattern == nil || *pattern == "" || *pattern == "%" {
		return func(string) bool { return true }
	}
	var b strings.Builder
	b.WriteString("(?i)^")
	for _, r := range *pattern {
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return func(string) bool { return false }
	}
	return re.MatchString
}
