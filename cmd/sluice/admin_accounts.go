package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

var whoamiSub = adminSub{name: "whoami", synopsis: "whoami", about: "who the credentials authenticate as: name, role and department", run: whoami}

func whoami(ctx context.Context, c *adminCmd, args []string) error {
	if _, err := c.parse(args); err != nil {
		return err
	}
	var p sluice.Principal
	if done, err := c.call(ctx, "GET", "/v1/whoami", nil, nil, &p); done || err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s (%s, department %s)\n", p.Name, p.Role, orDash(p.Department))
	return nil
}

// --- purposes ---

var purposeSubs = []adminSub{
	{name: "list", synopsis: "purposes list", about: "the registered purposes", run: purposesList},
	{name: "set", synopsis: "purposes set CODE --name NAME --legal-duty TEXT [--description TEXT]",
		about: "add or replace a purpose (platform admin)", run: purposesSet},
	{name: "remove", synopsis: "purposes remove CODE", about: "retire a purpose no open application or grant in force names (platform admin)", run: purposesRemove},
}

func purposesList(ctx context.Context, c *adminCmd, args []string) error {
	if _, err := c.parse(args); err != nil {
		return err
	}
	var out struct {
		Purposes []sluice.Purpose `json:"purposes"`
	}
	if done, err := c.call(ctx, "GET", "/v1/purposes", nil, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Purposes))
	for _, p := range out.Purposes {
		rows = append(rows, []string{p.Code, p.Name, orDash(p.LegalDuty), orDash(p.Description)})
	}
	printTable(c.stdout, []string{"code", "name", "legal duty", "description"}, rows)
	fmt.Fprintf(c.stdout, "(%s)\n", plural(len(rows), "purpose", "purposes"))
	return nil
}

func purposesSet(ctx context.Context, c *adminCmd, args []string) error {
	name := c.fs.String("name", "", "the purpose's name as applications state it (required)")
	duty := c.fs.String("legal-duty", "", "the legal duty it serves, e.g. the regulation and article (required)")
	desc := c.fs.String("description", "", "what the data is used for (replaces the old description)")
	pos, err := c.parse(args, "CODE")
	if err != nil {
		return err
	}
	if strings.TrimSpace(*name) == "" {
		return usageErr("--name is required: the purpose's name as applications state it")
	}
	if strings.TrimSpace(*duty) == "" {
		return usageErr("--legal-duty is required: cite the legal duty the purpose serves")
	}
	body := sluice.Purpose{Code: pos[0], Name: strings.TrimSpace(*name), LegalDuty: strings.TrimSpace(*duty), Description: strings.TrimSpace(*desc)}
	var p sluice.Purpose
	if done, err := c.call(ctx, "PUT", pathOf("purposes", pos[0]), nil, body, &p); done || err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "purpose %s: %s\n", p.Code, p.Name)
	fields(c.stdout, [][2]string{{"legal duty", p.LegalDuty}, {"description", p.Description}})
	return nil
}

func purposesRemove(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "CODE")
	if err != nil {
		return err
	}
	if done, err := c.call(ctx, "DELETE", pathOf("purposes", pos[0]), nil, nil, nil); done || err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "removed purpose %s\n", pos[0])
	return nil
}

// --- users ---

var userSubs = []adminSub{
	{name: "list", synopsis: "users list", about: "the platform's users (platform admin, auditor)", run: usersList},
	{name: "set", synopsis: "users set NAME --role ROLE --department D [--disabled] [--cert-fingerprint F]",
		about: "create or replace a user (platform admin)", run: usersSet},
}

var roles = []string{string(sluice.RoleAnalyst), string(sluice.RoleDeptAdmin), string(sluice.RolePlatformAdmin), string(sluice.RoleAuditor)}

func usersList(ctx context.Context, c *adminCmd, args []string) error {
	if _, err := c.parse(args); err != nil {
		return err
	}
	var out struct {
		Users []sluice.User `json:"users"`
	}
	if done, err := c.call(ctx, "GET", "/v1/users", nil, nil, &out); done || err != nil {
		return err
	}
	rows := make([][]string, 0, len(out.Users))
	for _, u := range out.Users {
		state := "active"
		if u.Disabled {
			state = "disabled"
		}
		rows = append(rows, []string{u.Name, string(u.Role), u.Department, state, orDash(short(u.CertFingerprint)), fmtDate(u.CreatedAt), orDash(u.CreatedBy)})
	}
	printTable(c.stdout, []string{"name", "role", "department", "state", "certificate", "created", "by"}, rows)
	fmt.Fprintf(c.stdout, "(%s)\n", plural(len(rows), "user", "users"))
	return nil
}

func usersSet(ctx context.Context, c *adminCmd, args []string) error {
	role := c.fs.String("role", "", "analyst, dept_admin, platform_admin or auditor (required)")
	dept := c.fs.String("department", "", "the user's department id (required)")
	disabled := c.fs.Bool("disabled", false, "disable the user: its tokens stop working (omit to enable)")
	fp := c.fs.String("cert-fingerprint", "", "sha256:<hex> (or PEM file) of a client certificate that authenticates as this user")
	pos, err := c.parse(args, "NAME")
	if err != nil {
		return err
	}
	if *role == "" {
		return usageErr("--role is required: %s", orList(roles))
	}
	if err := oneOf("role", *role, roles...); err != nil {
		return err
	}
	if *dept == "" {
		return usageErr("--department is required: the user's department id")
	}
	body := struct {
		Role            string `json:"role"`
		Department      string `json:"department"`
		Disabled        bool   `json:"disabled,omitempty"`
		CertFingerprint string `json:"cert_fingerprint,omitempty"`
	}{Role: *role, Department: *dept, Disabled: *disabled}
	if *fp != "" {
		if body.CertFingerprint, err = readFingerprint("cert-fingerprint", *fp); err != nil {
			return err
		}
	}
	var u sluice.User
	if done, err := c.call(ctx, "PUT", pathOf("users", pos[0]), nil, body, &u); done || err != nil {
		return err
	}
	state := ""
	if u.Disabled {
		state = ", disabled"
	}
	fmt.Fprintf(c.stdout, "user %s: %s of %s%s\n", u.Name, u.Role, u.Department, state)
	if u.CertFingerprint != "" {
		fmt.Fprintf(c.stdout, "  client certificate %s\n", u.CertFingerprint)
	}
	return nil
}

// --- tokens ---

var tokenSubs = []adminSub{
	{name: "list", synopsis: "tokens list USER", about: "a user's tokens, never their secrets", run: tokensList},
	{name: "issue", synopsis: "tokens issue USER [--ttl 720h] [--label L]", about: "issue a token; its secret is shown once", run: tokensIssue},
	{name: "revoke", synopsis: "tokens revoke ID", about: "revoke a token at once", run: tokensRevoke},
}

func tokenState(t sluice.Token, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked " + fmtTime(*t.RevokedAt)
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "valid"
}

func tokensList(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "USER")
	if err != nil {
		return err
	}
	var out struct {
		Tokens []sluice.Token `json:"tokens"`
	}
	if done, err := c.call(ctx, "GET", pathOf("users", pos[0], "tokens"), nil, nil, &out); done || err != nil {
		return err
	}
	now := time.Now()
	rows := make([][]string, 0, len(out.Tokens))
	for _, t := range out.Tokens {
		exp := fmtTime(t.ExpiresAt)
		if t.ExpiresAt.IsZero() {
			exp = "never"
		}
		rows = append(rows, []string{t.ID, orDash(t.Label), fmtTime(t.CreatedAt), exp, tokenState(t, now)})
	}
	printTable(c.stdout, []string{"id", "label", "created", "expires", "state"}, rows)
	fmt.Fprintf(c.stdout, "(%s of %s)\n", plural(len(rows), "token", "tokens"), pos[0])
	return nil
}

func tokensIssue(ctx context.Context, c *adminCmd, args []string) error {
	ttl := c.fs.String("ttl", "", "lifetime, a Go duration such as 720h (default: the broker's, 2160h; at most 8784h)")
	label := c.fs.String("label", "", "what the token is for, e.g. the machine or script using it")
	pos, err := c.parse(args, "USER")
	if err != nil {
		return err
	}
	if *ttl != "" {
		d, err := time.ParseDuration(*ttl)
		if err != nil || d <= 0 {
			return usageErr("--ttl %q is not a positive duration; write e.g. 720h", *ttl)
		}
	}
	body := struct {
		Label string `json:"label,omitempty"`
		TTL   string `json:"ttl,omitempty"`
	}{strings.TrimSpace(*label), *ttl}
	var out struct {
		sluice.Token
		Secret string `json:"token"`
	}
	done, err := c.call(ctx, "POST", pathOf("users", pos[0], "tokens"), nil, body, &out)
	if err != nil {
		return err
	}
	const warning = "sluice: the token's secret is shown only this once; the broker keeps only its hash. Store it now."
	if done {
		fmt.Fprintln(c.stderr, warning)
		return nil
	}
	fmt.Fprintf(c.stdout, "issued token %s for %s", out.ID, out.User)
	if out.Label != "" {
		fmt.Fprintf(c.stdout, " (%s)", out.Label)
	}
	fmt.Fprintf(c.stdout, ", valid until %s\n%s\n", fmtTime(out.ExpiresAt), out.Secret)
	fmt.Fprintln(c.stderr, warning)
	return nil
}

func tokensRevoke(ctx context.Context, c *adminCmd, args []string) error {
	pos, err := c.parse(args, "ID")
	if err != nil {
		return err
	}
	if done, err := c.call(ctx, "DELETE", pathOf("tokens", pos[0]), nil, nil, nil); done || err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "revoked token %s; it stops working at once\n", pos[0])
	return nil
}
