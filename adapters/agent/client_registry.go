package agent

import (
	"context"
	"encoding/json"
	"fmt"

	sluice "github.com/sluice-gov/sluice"
)

// Describe asks the agent for the columns of table in source (the
// department's only source when source is empty), each with the catalog
// type the agent proposes for it. An unknown source or table is ENotFound
// naming what exists.
func (c *Client) Describe(ctx context.Context, source, table string) (*TableDescription, error) {
	if table == "" {
		return nil, sluice.Errorf(sluice.EInvalid, "Describe needs a table; ListTables lists them")
	}
	body, err := c.jsonAction(ctx, actionDescribe, describeRequest{Source: source, Table: table})
	if err != nil {
		return nil, err
	}
	var out TableDescription
	if err := json.Unmarshal(body, &out); err != nil || out.Table == "" {
		return nil, c.badAnswer(actionDescribe, err)
	}
	return &out, nil
}

// ListTables asks the agent for the tables and views of source (the
// department's only source when source is empty) that can be registered.
func (c *Client) ListTables(ctx context.Context, source string) ([]string, error) {
	body, err := c.jsonAction(ctx, actionDescribe, describeRequest{Source: source})
	if err != nil {
		return nil, err
	}
	var out tableList
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, c.badAnswer(actionDescribe, err)
	}
	if out.Tables == nil {
		out.Tables = []string{}
	}
	return out.Tables, nil
}

// RegisterDataset asks the agent to serve ds over table of source, or to
// replace the classification of a dataset registered before under the same
// name. Empty source and table fall back to ds.Source and ds.Table (and an
// empty source to the department's only source). The agent refuses a
// dataset that does not pass the catalog's rules, names columns the table
// does not have, or has the name of a dataset of its configuration
// (EInvalid); an agent started without a registry file answers
// ENotSupported.
func (c *Client) RegisterDataset(ctx context.Context, ds *sluice.Dataset, source, table string) error {
	if ds == nil {
		return sluice.Errorf(sluice.EInvalid, "no dataset given to register")
	}
	if source == "" {
		source = ds.Source
	}
	if table == "" {
		table = ds.Table
	}
	_, err := c.jsonAction(ctx, actionRegister, Registration{Source: source, Table: table, Dataset: ds})
	return err
}

// UnregisterDataset asks the agent to stop serving a registered dataset.
// Datasets of the agent's configuration cannot be removed (EInvalid); an
// unknown name is ENotFound.
func (c *Client) UnregisterDataset(ctx context.Context, name string) error {
	if name == "" {
		return sluice.Errorf(sluice.EInvalid, "no dataset name given to unregister")
	}
	_, err := c.jsonAction(ctx, actionUnregister, unregisterRequest{Name: name})
	return err
}

// jsonAction runs an action with a JSON body and returns the joined result.
func (c *Client) jsonAction(ctx context.Context, typ string, req any) ([]byte, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, &sluice.Error{Code: sluice.EInvalid, Message: fmt.Sprintf("the %s request cannot be encoded: %v", typ, err), Err: err}
	}
	if len(raw) > maxTicketBytes {
		return nil, sluice.Errorf(sluice.EInvalid, "the %s request is %d bytes encoded; the limit is %d", typ, len(raw), maxTicketBytes)
	}
	results, err := c.actionResults(ctx, typ, raw)
	if err != nil {
		return nil, err
	}
	var body []byte
	for _, r := range results {
		body = append(body, r...)
	}
	return body, nil
}

func (c *Client) badAnswer(typ string, err error) error {
	if err == nil {
		err = fmt.Errorf("the answer is incomplete")
	}
	return &sluice.Error{Code: sluice.EInternal, Message: fmt.Sprintf("the agent of department %s sent a %s answer that cannot be read: %v", c.dept, typ, err), Err: err}
}
