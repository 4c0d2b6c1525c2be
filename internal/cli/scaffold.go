package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/scaffold"
)

// maxSample bounds --sample: a few values per column are evidence enough.
const maxSample = 1000

type scaffoldOptions struct {
	engine, dsn, dsnFile string
	schemas              []string
	name, secret, output string
	sample               int
}

func newScaffoldCommand(g *globalOptions) *cobra.Command {
	o := &scaffoldOptions{}
	cmd := &cobra.Command{
		Use:   "scaffold --engine postgres|mysql --dsn-file FILE|--dsn DSN [--schema SCHEMA]...",
		Short: "Draft a DataStore from a live PostgreSQL or MySQL/MariaDB database",
		Long: `scaffold introspects a live database and prints a DataStore YAML a reviewer
can start from: one collection per table with its primary key, references
from foreign keys (onParentErasure from the ON DELETE rule and nullability),
identity columns, and a category and masking strategy per column guessed
from its name, type and constraints. Every guess carries a comment saying
why and how sure; what it cannot decide is listed at the end.

--sample N reads up to N values of each text column and counts how many look
like e-mail addresses, phone numbers, IP addresses, IBANs or card numbers.
Values are never printed, logged or stored: only the counts are.

The DSN holds a password: it is never printed. Prefer --dsn-file (- reads
standard input) to --dsn, which the shell history and the process list show.
scaffold does not contact the Kubernetes API server; -n only sets the
namespace written in the YAML.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runScaffold(cmd.Context(), g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.engine, "engine", "", "the database engine: postgres or mysql (also MariaDB)")
	f.StringVar(&o.dsn, "dsn", "", "the connection string (a postgres:// URL or keyword string; a go-sql-driver DSN for mysql); prefer --dsn-file")
	f.StringVar(&o.dsnFile, "dsn-file", "", "a file holding the connection string; - reads standard input")
	f.StringSliceVar(&o.schemas, "schema", nil, "a schema (PostgreSQL) or database (MySQL) to scaffold; repeatable (default: the connection's current one)")
	f.StringVar(&o.name, "name", "", "the DataStore's name (default: the database's name)")
	f.StringVar(&o.secret, "secret", "", "the Secret holding the DSN (key dsn) and the masking key (key maskingKey) (default: the DataStore's name)")
	f.IntVar(&o.sample, "sample", 0, fmt.Sprintf("sample up to N values per text column and count pattern matches (at most %d; 0: no sampling)", maxSample))
	f.StringVarP(&o.output, "output-file", "f", "", "write the YAML to this file instead of standard output")
	return cmd
}

func runScaffold(ctx context.Context, g *globalOptions, o *scaffoldOptions) error {
	engine := privacyv1.Engine(o.engine)
	if engine != privacyv1.EnginePostgres && engine != privacyv1.EngineMySQL {
		return errors.New("--engine must be postgres or mysql")
	}
	if o.sample < 0 || o.sample > maxSample {
		return fmt.Errorf("--sample must be between 0 and %d", maxSample)
	}
	dsn, err := readDSN(g, o)
	if err != nil {
		return err
	}
	db, err := scaffold.Open(ctx, engine, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	schema, err := db.Introspect(ctx, o.schemas)
	if err != nil {
		return err
	}
	var stats map[string]*scaffold.Stats
	if o.sample > 0 {
		if stats, err = sampleColumns(ctx, db, schema, o.sample); err != nil {
			return err
		}
	}
	ns := g.namespace
	d := scaffold.Build(schema, stats, scaffold.Options{Name: o.name, Namespace: ns, SecretName: o.secret, Sampled: o.sample})
	out, err := d.YAML()
	if err != nil {
		return fmt.Errorf("rendering the DataStore: %w", err)
	}
	var w io.Writer = g.streams.Out
	if o.output != "" {
		f, err := os.OpenFile(o.output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if _, err := w.Write(out); err != nil {
		return err
	}
	fields := 0
	for _, c := range d.Store.Spec.Collections {
		fields += len(c.Fields)
	}
	fmt.Fprintf(g.streams.Err, "scaffolded %d table(s) into %d collection(s) and %d field(s); %d item(s) to review (the comments at the end)\n",
		len(schema.Tables), len(d.Store.Spec.Collections), fields, len(d.Review))
	return nil
}

// readDSN reads the DSN and records it, and its password, as values no
// message may carry.
func readDSN(g *globalOptions, o *scaffoldOptions) (string, error) {
	if (o.dsn == "") == (o.dsnFile == "") {
		return "", errors.New("give exactly one of --dsn and --dsn-file")
	}
	dsn := o.dsn
	if o.dsnFile != "" {
		var r io.Reader
		if o.dsnFile == "-" {
			r = g.streams.In
		} else {
			f, err := os.Open(o.dsnFile)
			if err != nil {
				return "", fmt.Errorf("reading --dsn-file: %w", err)
			}
			defer f.Close()
			r = f
		}
		b, err := io.ReadAll(io.LimitReader(r, 64<<10))
		if err != nil {
			return "", fmt.Errorf("reading --dsn-file: %w", err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	if dsn == "" {
		return "", errors.New("the DSN is empty")
	}
	g.addSensitive(dsn)
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			g.addSensitive(p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	if cfg, err := mysql.ParseDSN(dsn); err == nil && cfg.Passwd != "" {
		g.addSensitive(cfg.Passwd)
	}
	for _, kv := range strings.Fields(dsn) { // keyword form: password=...
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "password") {
			g.addSensitive(strings.Trim(v, "'"))
		}
	}
	return dsn, nil
}

// sampleColumns reads up to n values of each text column of the tables and
// counts the pattern matches; the values themselves are dropped as read.
func sampleColumns(ctx context.Context, db *scaffold.DB, s *scaffold.Schema, n int) (map[string]*scaffold.Stats, error) {
	stats := map[string]*scaffold.Stats{}
	for _, t := range s.Tables {
		for _, col := range t.Columns {
			if col.Kind != masking.KindText {
				continue
			}
			st := &scaffold.Stats{}
			if _, err := db.Sample(ctx, t, col.Name, n, st.Add); err != nil {
				return nil, err
			}
			stats[scaffold.ColumnKey(t, col.Name)] = st
		}
	}
	return stats, nil
}
