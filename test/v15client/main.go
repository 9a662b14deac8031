// Command v15client is an analyst's program built against the Flight SQL
// database/sql driver of Apache Arrow v15 (github.com/apache/arrow/go/v15),
// which tools in the field still ship. It is its own module so the broker,
// built on arrow-go v18, is tested against the old client as it is:
// test/v15client_test.go builds it and runs it against the demo broker.
//
//	v15client -dsn 'flightsql://host:port?token=…&tls=skip-verify&x-sluice-purpose=…' 'SELECT …'
//
// It prints the column names, then one line per row, values separated by
// tabs (NULL as \N, dates as 2006-01-02); an error goes to stderr with
// exit status 1.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/apache/arrow/go/v15/arrow/flight/flightsql/driver"
)

func main() {
	dsn := flag.String("dsn", "", "the broker's Flight SQL DSN")
	timeout := flag.Duration("timeout", time.Minute, "how long the query may take")
	flag.Parse()
	if *dsn == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: v15client -dsn DSN 'SELECT …'")
		os.Exit(2)
	}
	if err := run(*dsn, flag.Arg(0), *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(dsn, stmt string, timeout time.Duration) error {
	db, err := sql.Open("flightsql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	fmt.Println(strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		out := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				out[i] = `\N`
			case time.Time:
				out[i] = x.UTC().Format("2006-01-02")
			case []byte:
				out[i] = fmt.Sprintf("%x", x)
			default:
				out[i] = fmt.Sprint(x)
			}
		}
		fmt.Println(strings.Join(out, "\t"))
	}
	return rows.Err()
}
