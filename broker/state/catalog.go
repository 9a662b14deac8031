package state

import (
	"slices"
	"strings"

	sluice "github.com/sluice-gov/sluice"
)

// VisibleColumns is what principal p may know exists of a dataset: the
// owner department sees every column; others do not see hidden ones.
func VisibleColumns(ds *sluice.Dataset, p sluice.Principal) []*sluice.Column {
	out := make([]*sluice.Column, 0, len(ds.Columns))
	for _, c := range ds.Columns {
		if c.Release == sluice.ReleaseHidden && p.Department != ds.Department {
			continue
		}
		out = append(out, c)
	}
	return out
}

// CatalogQuery filters the data resource catalog.
type CatalogQuery struct {
	Keyword    string
	Department string
	ShareClass string
	Grade      string
}

// DatasetView is a catalog entry as a principal may see it.
type DatasetView struct {
	sluice.Dataset
	DepartmentName string `json:"department_name"`
}

// BrowseCatalog searches the catalog by keyword (name, title, description,
// column names and descriptions), department, share class and grade (a
// dataset matches a grade when one of its visible columns has it).
func (st *State) BrowseCatalog(p sluice.Principal, q CatalogQuery) []DatasetView {
	kw := strings.ToLower(strings.TrimSpace(q.Keyword))
	out := []DatasetView{}
	for _, ds := range st.Catalog.Datasets() {
		if q.Department != "" && ds.Department != q.Department {
			continue
		}
		if q.ShareClass != "" && string(ds.ShareClass) != q.ShareClass {
			continue
		}
		v := DatasetView{Dataset: *ds}
		v.Columns = VisibleColumns(ds, p)
		if d := st.Catalog.Department(ds.Department); d != nil {
			v.DepartmentName = d.Name
		}
		if q.Grade != "" && !slices.ContainsFunc(v.Columns, func(c *sluice.Column) bool { return string(c.Grade) == q.Grade }) {
			continue
		}
		if kw != "" && !datasetMatches(&v, kw) {
			continue
		}
		out = append(out, v)
	}
	return out
}

func datasetMatches(v *DatasetView, kw string) bool {
	text := []string{v.FullName(), v.Title, v.Description, v.DepartmentName, v.LegalBasis, v.ShareConditions}
	for _, c := range v.Columns {
		text = append(text, c.Name, c.Description)
	}
	return strings.Contains(strings.ToLower(strings.Join(text, "\n")), kw)
}
